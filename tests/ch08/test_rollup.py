"""Roll-ups: settled minutes, summed per customer and meter, counted once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, insert, select

from ch08_metering.accounts import parse_accounts
from ch08_metering.events import Feature, Meter, usage_event
from ch08_metering.ledger import Ledger
from ch08_metering.rollup import (
    MAX_IDENTIFIER,
    meter_event_identifier,
    roll_up,
    settled_before_ms,
    stripe_event_names,
)
from ch08_metering.schema import (
    rollups,
    stripe_dead_letters,
    stripe_outbox,
    usage_events,
)
from tests.ch08.delivery_harness import NOON, uncounted

NOON_MS = int(NOON * 1000)
ACCOUNTS = parse_accounts({
    "tiers": {"growth": {"max_concurrent_streams": 2,
                         "audio_seconds_per_minute": 60}},
    "customers": {"acme": {"tier": "growth",
                           "stripe_customer_id": "cus_acme"},
                  "beta": {"tier": "growth",
                           "stripe_customer_id": "cus_beta"}},
})


def ingest(ledger: Ledger, stream: str, sequence: int, at: float,
           value: int, *, customer: str = "acme",
           meter: Meter = "audio_ms",
           features: tuple[Feature, ...] = ()) -> None:
    ledger.ingest([usage_event(
        stream_id=stream, sequence=sequence, customer=customer,
        source="test", meter=meter, value=value, features=features,
        at=at)], now_ms=int(at * 1000))


def outbox(ledger: Ledger) -> list[tuple[str, str, int, int, str]]:
    """(customer, event name, minute start, value, Stripe id), sorted."""
    with ledger.engine.connect() as connection:
        return sorted(
            (r.customer, r.event_name, r.timestamp_s - int(NOON), r.value,
             r.stripe_customer_id)
            for r in connection.execute(select(stripe_outbox)))


def test_settled_minutes_are_summed_per_customer_meter_and_utc_minute(
        ledger: Ledger) -> None:
    ingest(ledger, "a", 1, NOON, 1_000)  # 12:00:00.000
    ingest(ledger, "a", 2, NOON + 59.999, 2_000)  # same minute
    ingest(ledger, "a", 3, NOON + 60, 4_000)  # 12:01:00.000: the next
    ingest(ledger, "b", 1, NOON + 30, 500, features=("diarization",
                                                     "pii_redaction"))
    ingest(ledger, "c", 1, NOON + 10, 7, customer="beta",
           meter="characters")
    ingest(ledger, "d", 1, NOON + 10, 9, customer="beta", meter="tokens",
           features=("summarization",))
    counts = roll_up(ledger.engine, ACCOUNTS, NOON_MS + 200_000,
                     settle_s=0)
    assert (counts.rollups, counts.events, counts.outbox_rows) == (2, 6, 7)
    assert outbox(ledger) == [
        ("acme", "speech_audio_ms", 0, 3_500, "cus_acme"),
        ("acme", "speech_audio_ms", 60, 4_000, "cus_acme"),
        ("acme", "speech_audio_ms_diarization", 0, 500, "cus_acme"),
        ("acme", "speech_audio_ms_pii_redaction", 0, 500, "cus_acme"),
        ("beta", "speech_characters", 0, 7, "cus_beta"),
        ("beta", "speech_tokens", 0, 9, "cus_beta"),
        ("beta", "speech_tokens_summarization", 0, 9, "cus_beta"),
    ]
    assert uncounted(ledger.engine) == 0


def test_only_minutes_that_ended_settle_s_ago_are_rolled_up(
        ledger: Ledger) -> None:
    ingest(ledger, "a", 1, NOON + 5, 100)  # minute 12:00
    ingest(ledger, "a", 2, NOON + 65, 200)  # minute 12:01
    # 12:03:30: 12:01 ended 90 s ago, not yet the 120 s to settle
    assert settled_before_ms(NOON_MS + 210_000, 120) == NOON_MS + 60_000
    assert settled_before_ms(NOON_MS + 30_000, -60) == NOON_MS + 60_000
    roll_up(ledger.engine, ACCOUNTS, NOON_MS + 210_000, settle_s=120)
    assert outbox(ledger) == [("acme", "speech_audio_ms", 0, 100,
                               "cus_acme")]
    assert uncounted(ledger.engine) == 1
    roll_up(ledger.engine, ACCOUNTS, NOON_MS + 240_000, settle_s=120)
    assert outbox(ledger) == [
        ("acme", "speech_audio_ms", 0, 100, "cus_acme"),
        ("acme", "speech_audio_ms", 60, 200, "cus_acme")]
    assert uncounted(ledger.engine) == 0


def identified(ledger: Ledger) -> dict[str, int]:
    with ledger.engine.connect() as connection:
        return {r.identifier: r.value for r in connection.execute(
            select(stripe_outbox.c.identifier, stripe_outbox.c.value))}


def test_a_late_event_makes_a_new_row_and_never_changes_one(
        ledger: Ledger) -> None:
    ingest(ledger, "a", 1, NOON + 5, 100)
    roll_up(ledger.engine, ACCOUNTS, NOON_MS + 120_000, settle_s=0)
    first = identified(ledger)
    ingest(ledger, "a", 2, NOON + 10, 50)  # arrives after its minute
    counts = roll_up(ledger.engine, ACCOUNTS, NOON_MS + 180_000, settle_s=0)
    rows = identified(ledger)
    assert counts.outbox_rows == 1
    assert first.items() <= rows.items()  # the sent row is unchanged
    [(late, value)] = [(i, v) for i, v in rows.items() if i not in first]
    assert value == 50
    assert late.rsplit(":", 1)[0] == next(iter(first)).rsplit(":", 1)[0]
    assert roll_up(ledger.engine, ACCOUNTS, NOON_MS + 240_000,
                   settle_s=0).outbox_rows == 0


def test_identifiers_follow_what_they_count_and_fit_stripe() -> None:
    keys = [("test", "s-1"), ("test", "s-2")]
    identifier = meter_event_identifier("acme", "speech_audio_ms", NOON_MS,
                                        keys)
    assert identifier.startswith(f"acme:speech_audio_ms:{int(NOON)}:")
    assert identifier == meter_event_identifier(
        "acme", "speech_audio_ms", NOON_MS, keys[::-1])
    assert identifier != meter_event_identifier(
        "acme", "speech_audio_ms", NOON_MS, keys[:1])
    for customer in ("c" * 200, "ac me/ü"):
        hashed = meter_event_identifier(
            customer, "speech_characters_summarization", NOON_MS, keys)
        assert hashed.startswith("h")
        assert len(hashed) <= MAX_IDENTIFIER
    assert stripe_event_names("tokens", ("pii_redaction",)) == [
        "speech_tokens", "speech_tokens_pii_redaction"]
    with pytest.raises(ValueError, match="longer than 100"):
        meter_event_identifier("acme", "m" * 80, NOON_MS, keys)


def test_each_minute_is_one_transaction_counting_every_event_once(
        ledger: Ledger) -> None:
    for n in range(7):  # 3 in the first minute, 3 in the next, then 1
        ingest(ledger, "s", n, NOON + 30 * n, 10)
    counts = roll_up(ledger.engine, ACCOUNTS, NOON_MS + 300_000,
                     settle_s=0)
    with ledger.engine.connect() as connection:
        sizes = list(connection.scalars(
            select(rollups.c.events).order_by(rollups.c.id)))
    assert (counts.rollups, counts.events) == (4, 7)
    assert sizes == [2, 2, 2, 1]
    assert sum(identified(ledger).values()) == 70
    assert uncounted(ledger.engine) == 0


def test_usage_of_a_customer_without_a_stripe_id_is_dead_lettered(
        ledger: Ledger) -> None:
    ingest(ledger, "g", 1, NOON, 5, customer="gone")
    counts = roll_up(ledger.engine, ACCOUNTS, NOON_MS + 120_000, settle_s=0)
    with ledger.engine.connect() as connection:
        [dead] = connection.execute(select(stripe_dead_letters)).all()
    assert (counts.outbox_rows, counts.dead_letters) == (0, 1)
    assert (dead.customer, dead.value) == ("gone", 5)
    assert "'gone' is not in the accounts file" in dead.reason
    assert uncounted(ledger.engine) == 0


def test_concurrent_roll_ups_count_each_event_once(ledger: Ledger) -> None:
    ledger.ingest([usage_event(
        stream_id=f"s{n % 9}", sequence=n, customer=("acme", "beta")[n % 2],
        source="test", meter="audio_ms", value=n, features=(),
        at=NOON + n) for n in range(300)], now_ms=NOON_MS)
    barrier = threading.Barrier(4)

    def roll() -> None:
        barrier.wait(timeout=10)
        roll_up(ledger.engine, ACCOUNTS, NOON_MS + 900_000, settle_s=0)

    threads = [threading.Thread(target=roll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    with ledger.engine.connect() as connection:
        counted = connection.scalar(select(func.sum(rollups.c.events)))
    assert counted == 300
    assert sum(identified(ledger).values()) == sum(range(300))
    assert uncounted(ledger.engine) == 0


def test_a_busy_minute_is_one_call_per_customer_and_meter(
        ledger: Ledger) -> None:
    for n in range(600):  # real-time metering: an event per 100 ms
        for customer in ("acme", "beta"):
            ingest(ledger, customer, n, NOON + n / 10, 100,
                   customer=customer)
    counts = roll_up(ledger.engine, ACCOUNTS, NOON_MS + 200_000,
                     settle_s=0)
    assert (counts.events, counts.outbox_rows) == (1200, 2)
    assert [(c, minute, value) for c, _, minute, value, _ in
            outbox(ledger)] == [("acme", 0, 60_000), ("beta", 0, 60_000)]


def insert_stored_event(ledger: Ledger, event_id: str, at: float,
                        value: int, *, customer: str = "acme",
                        meter: str = "audio_ms", features: str = "") -> None:
    """A row as an older version may have written it: no ingest checks."""
    with ledger.engine.begin() as connection:
        connection.execute(insert(usage_events).values(
            source="legacy", id=event_id, customer=customer, meter=meter,
            value=value, features=features, stream_id=None,
            event_time_ms=int(at * 1000), accepted_at_ms=int(at * 1000),
            body="{}", rollup_id=None))


def test_a_poison_row_is_dead_lettered_and_every_other_minute_rolled_up(
        ledger: Ledger) -> None:
    ingest(ledger, "a", 1, NOON + 1, 1_000)  # acme 12:00, overflowed next
    ingest(ledger, "b", 1, NOON + 2, 500, customer="beta")  # beta 12:00
    ingest(ledger, "a", 2, NOON + 61, 2_000)  # acme 12:01
    ingest(ledger, "b", 2, NOON + 62, 700, customer="beta")  # collides
    insert_stored_event(ledger, "huge", NOON + 3, 2**63 - 1)
    insert_stored_event(ledger, "video", NOON + 4, 9, customer="beta",
                        meter="video_ms")
    insert_stored_event(ledger, "karaoke", NOON + 63, 5,
                        features="karaoke")
    # an outbox row with the identifier beta's 12:01 will get, as if an
    # older roll-up had written it: that row's insert raises
    taken = meter_event_identifier("beta", "speech_audio_ms",
                                   NOON_MS + 60_000, [("test", "b-2")])
    with ledger.engine.begin() as connection:
        connection.execute(insert(stripe_outbox).values(
            identifier=taken, rollup_id=0, customer="beta",
            stripe_customer_id="cus_beta", event_name="speech_audio_ms",
            timestamp_s=int(NOON) + 60, value=1, attempts=0,
            next_attempt_ms=0))
    counts = roll_up(ledger.engine, ACCOUNTS, NOON_MS + 200_000,
                     settle_s=0)
    with ledger.engine.connect() as connection:
        dead = sorted((d.customer, d.event_name, d.timestamp_s - int(NOON),
                       d.value, d.reason) for d in connection.execute(
            select(stripe_dead_letters)))
    assert (counts.events, counts.outbox_rows, counts.dead_letters) == (
        7, 2, 4)
    assert outbox(ledger) == [
        ("acme", "speech_audio_ms", 60, 2_000, "cus_acme"),
        ("beta", "speech_audio_ms", 0, 500, "cus_beta"),
        ("beta", "speech_audio_ms", 60, 1, "cus_beta")]  # the older row
    assert [d[:4] for d in dead] == [
        ("acme", "audio_ms", 60, 5), ("acme", "speech_audio_ms", 0, 0),
        ("beta", "speech_audio_ms", 60, 700), ("beta", "video_ms", 0, 9)]
    assert [d[4].split(":")[0] for d in dead] == [
        "feature 'karaoke' is not sent to Stripe",
        f"sum {2**63 - 1 + 1_000} of 2 events does not fit a 64-bit "
        "integer (stored as 0)",
        "the ledger refused the row",
        "meter 'video_ms' is not sent to Stripe"]
    assert uncounted(ledger.engine) == 0
