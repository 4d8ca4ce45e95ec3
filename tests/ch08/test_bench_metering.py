"""The chapter 8 benchmark's Stripe figures are calls it counted."""

from __future__ import annotations

from bench.ch08_metering import (
    preaggregated_calls,
    realtime_calls,
    start_on_a_minute,
)
from ch08_metering.events import UsageEvent, usage_event
from ch08_metering.ledger import Ledger
from tests.ch08.delivery_harness import NOON, accounts_of


def thirty_seconds(start: float) -> list[UsageEvent]:
    """Two customers' audio with diarization, an event a second."""
    return [usage_event(stream_id=f"{customer}-s", sequence=n,
                        customer=customer, source="bench",
                        meter="audio_ms", value=1000,
                        features=("diarization",), at=start + n)
            for customer in ("acme", "beta") for n in range(30)]


def test_every_event_and_meter_is_a_call_in_real_time(
        ledger: Ledger) -> None:
    ledger.ingest(thirty_seconds(NOON + 10), now_ms=int(NOON * 1000))
    # 60 events, each on speech_audio_ms and its diarization meter.
    assert realtime_calls(ledger.engine, accounts_of("acme", "beta")) == 120


def test_a_run_under_a_minute_is_one_call_per_customer_and_meter(
        ledger: Ledger) -> None:
    # From 12:00:45 to 12:01:14: across a minute's end, which the
    # roll-up would otherwise count twice.
    ledger.ingest(thirty_seconds(NOON + 45), now_ms=int(NOON * 1000))
    accounts = accounts_of("acme", "beta")
    settled_ms = start_on_a_minute(ledger.engine)
    assert settled_ms == (NOON + 60) * 1000
    assert preaggregated_calls(ledger.engine, accounts,
                               settled_ms / 1000) == 4
