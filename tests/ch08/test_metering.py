"""Cutting usage into events, and the bounded writer to the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from ch08_metering.events import UsageEvent
from ch08_metering.ledger import Ledger, LedgerBusyError, Outcome
from ch08_metering.metering import LedgerWriter, StreamMeter


def test_a_long_stream_is_cut_every_interval_and_at_its_end() -> None:
    meter = StreamMeter("s", "acme", ("diarization",), started_at=1000.0)
    events: list[UsageEvent] = []
    now = 1000.0
    for n in range(1, 1501):  # 150 s of 100 ms frames, on the wall clock
        now = 1000.0 + n / 10
        if (event := meter.add(0.1, now)) is not None:
            events.append(event)
    last = meter.cut(now)
    assert last is not None
    events.append(last)
    assert [e.id for e in events] == ["s-1", "s-2", "s-3"]
    assert [e.data.value for e in events] == [60_000, 60_000, 30_000]
    assert [e.time.timestamp() for e in events] == pytest.approx(
        [1060.0, 1120.0, 1150.0])
    assert {e.data.features for e in events} == {("diarization",)}


def test_rounding_never_accumulates() -> None:
    meter = StreamMeter("s", "acme", (), started_at=0.0, interval_s=0.0)
    values = []
    for n in range(1, 1001):
        event = meter.add(0.0004, float(n))  # 0.4 ms frames
        values.append(event.data.value if event else 0)
    assert sum(values) == round(1000 * 0.4)


def test_nothing_to_bill_makes_no_event() -> None:
    meter = StreamMeter("s", "acme", (), started_at=0.0)
    assert meter.add(0.0, 61.0) is None
    assert meter.cut(62.0) is None


def test_real_time_metering_is_one_event_per_frame() -> None:
    meter = StreamMeter("s", "acme", (), started_at=0.0, interval_s=0.0)
    events = [meter.add(0.1, 0.1 * n) for n in range(1, 11)]
    assert [e.data.value for e in events if e] == [100] * 10


class FlakyLedger:
    """A ledger that is busy for the first `busy` writes."""

    def __init__(self, busy: int) -> None:
        self.busy, self.batches = busy, list[list[UsageEvent]]()

    def ingest(self, events: Sequence[UsageEvent],
               now_ms: int) -> list[Outcome]:
        if self.busy:
            self.busy -= 1
            raise LedgerBusyError("database is locked")
        self.batches.append(list(events))
        return []


def events(count: int) -> list[UsageEvent]:
    meter = StreamMeter("s", "acme", (), started_at=0.0, interval_s=0.0)
    made = [meter.add(0.1, float(n)) for n in range(1, count + 1)]
    return [e for e in made if e is not None]


async def test_the_writer_batches_and_retries_a_busy_ledger() -> None:
    ledger = FlakyLedger(busy=2)
    writer = LedgerWriter(ledger, lambda: 0,
                          batch=100, retry_s=0.0)
    for event in events(250):
        await writer.put(event)
    writer.start()
    await writer.close(timeout_s=10)
    assert [len(b) for b in ledger.batches] == [100, 100, 50]
    assert writer.written == 250


async def test_unwritten_events_are_spilled_for_replay(
        tmp_path: Path) -> None:
    ledger = FlakyLedger(busy=10**9)  # the database never comes back
    spill = tmp_path / "spill.jsonl"
    writer = LedgerWriter(ledger, lambda: 0,
                          batch=10, retry_s=0.01, spill=spill)
    sent = events(25)
    for event in sent:
        await writer.put(event)
    writer.start()
    await writer.close(timeout_s=0.1)
    saved = [UsageEvent.model_validate_json(line)
             for line in spill.read_text().splitlines()]
    assert sorted(e.id for e in saved) == sorted(e.id for e in sent)


async def test_a_full_queue_makes_the_stream_wait(ledger: Ledger) -> None:
    writer = LedgerWriter(ledger, lambda: 0, capacity=2)
    made = events(3)
    await writer.put(made[0])
    await writer.put(made[1])
    third = asyncio.create_task(writer.put(made[2]))
    await asyncio.sleep(0)
    assert not third.done()  # waits: usage is never dropped
    writer.start()
    await asyncio.wait_for(third, timeout=10)
    await writer.close(timeout_s=10)
    assert sum(ledger.totals().values()) == 300
