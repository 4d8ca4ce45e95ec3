"""Cutting a stream's usage into events, and getting them to the ledger.

Chapter 8, "Real-time vs batch metering". A `StreamMeter` counts one
stream's audio and cuts a usage event every `interval_s` of wall-clock
time and at the end of the stream, so a three-hour stream is billed as
it goes and a crash loses at most one interval. An interval of zero is
real-time metering: one event per audio frame. Values are cut from the
running total in whole milliseconds, so rounding never accumulates:
the events of a stream always sum to its rounded total. The same
intervals cut its compute time (`compute_ms`: the accelerator time of
its decodes, chapter 4's `device_shares`), and the stream's opening is
one API call (`api_calls`, value 1): what one stream costs the service
to run, beside what it sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ch08_metering.events import Feature, UsageEvent, usage_event
from ch08_metering.ledger import LedgerBusyError, Outcome

log = logging.getLogger("ch08_metering")

# The service's own sources: only a service key may report under them
# (ingest_api.py), so no customer can take the id of an event that the
# service will send for it, such as its stream's next interval.
SERVICE_SOURCES = "urn:speechapi:"
SOURCE = f"{SERVICE_SOURCES}streaming"


@dataclass
class StreamMeter:
    stream_id: str
    customer: str
    features: tuple[Feature, ...]
    started_at: float
    interval_s: float = 60.0
    audio_s: float = field(default=0.0, init=False)
    emitted_ms: int = field(default=0, init=False)
    sequence: int = field(default=0, init=False)
    interval_start: float = field(init=False)
    compute_s: float = field(default=0.0, init=False)
    compute_ms: int = field(default=0, init=False)  # emitted so far
    compute_sequence: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.interval_start = self.started_at

    # --8<-- [start:interval_metering]
    def due(self, now: float) -> bool:
        """Whether the current interval is over."""
        return now - self.interval_start >= self.interval_s

    def add(self, seconds: float, now: float) -> UsageEvent | None:
        """Count a frame; an event if its interval is over."""
        self.audio_s += seconds
        if not self.due(now):
            return None
        return self.cut(now)

    def cut(self, now: float) -> UsageEvent | None:
        """The usage since the last event, or None if there is none."""
        total_ms = round(self.audio_s * 1000)
        value = total_ms - self.emitted_ms
        self.interval_start = now
        if value <= 0:
            return None
        self.emitted_ms, self.sequence = total_ms, self.sequence + 1
        return usage_event(
            stream_id=self.stream_id, sequence=self.sequence,
            customer=self.customer, source=SOURCE, meter="audio_ms",
            value=value, features=self.features, at=now)
    # --8<-- [end:interval_metering]

    # --8<-- [start:compute_metering]
    def compute(self, device_s: float) -> None:
        """Count a decode's share of the accelerator's time."""
        self.compute_s += device_s

    def cut_compute(self, now: float) -> UsageEvent | None:
        """The device time since the last compute event, in whole ms."""
        total_ms = round(self.compute_s * 1000)
        value = total_ms - self.compute_ms
        if value <= 0:
            return None
        self.compute_ms = total_ms
        self.compute_sequence += 1
        return usage_event(
            stream_id=self.stream_id, sequence=self.compute_sequence,
            customer=self.customer, source=SOURCE, meter="compute_ms",
            value=value, features=(), at=now, series="compute_ms")

    def opened(self) -> UsageEvent:
        """The stream's one API call, at the time it was admitted."""
        return usage_event(
            stream_id=self.stream_id, sequence=1, customer=self.customer,
            source=SOURCE, meter="api_calls", value=1, features=(),
            at=self.started_at, series="api_calls")
    # --8<-- [end:compute_metering]


class UsageStore(Protocol):
    """Where events go: the ledger, or a fake in a test."""

    def ingest(self, events: Sequence[UsageEvent],
               now_ms: int) -> Sequence[Outcome]: ...


@dataclass
class LedgerWriter:
    """A bounded queue in front of the ledger, written in batches.

    Streams hand events over without waiting on the database; one task
    writes up to `batch` at a time in a worker thread. When the queue is
    full, `put` waits: usage is money, so the stream slows down rather
    than the event being dropped. Events still unwritten at shutdown
    (the database is down) are saved to `spill` for replay.
    """

    ledger: UsageStore
    clock_ms: Callable[[], int]  # acceptance time, Unix milliseconds
    capacity: int = 10_000
    batch: int = 100
    retry_s: float = 0.2
    spill: Path | None = None
    _queue: asyncio.Queue[UsageEvent] = field(init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _in_flight: list[UsageEvent] = field(default_factory=list, init=False)
    written: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.capacity)

    # --8<-- [start:event_queue]
    async def put(self, event: UsageEvent) -> None:
        await self._queue.put(event)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            events = [await self._queue.get()]
            while len(events) < self.batch and not self._queue.empty():
                events.append(self._queue.get_nowait())
            await self._write(events)
    # --8<-- [end:event_queue]

    async def _write(self, events: list[UsageEvent]) -> None:
        self._in_flight = events
        while True:
            try:
                await asyncio.to_thread(self.ledger.ingest, events,
                                        self.clock_ms())
            except Exception as error:  # keep them; the next try may work
                busy = isinstance(error, LedgerBusyError)
                log.warning("event=%s events=%d error=%s",
                            "ledger_busy" if busy else "ledger_write_failed",
                            len(events), error, exc_info=not busy)
                await asyncio.sleep(self.retry_s)
                continue
            self.written += len(events)
            self._in_flight = []
            for _ in events:
                self._queue.task_done()
            return

    async def close(self, timeout_s: float) -> None:
        """Write what is queued; spill the rest if the time runs out."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        except TimeoutError:
            self._save_unwritten()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _save_unwritten(self) -> None:
        # In-flight events may commit too: replaying them is harmless,
        # because the ledger answers a repeated event as a duplicate.
        events = list(self._in_flight)
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        if not events:
            return
        log.error("event=usage_unwritten events=%d spill=%s",
                  len(events), self.spill)
        if self.spill is not None:
            with self.spill.open("a") as file:
                for event in events:
                    file.write(event.model_dump_json() + "\n")
