"""The service's audit writer: off the event loop, batched, bounded.

Chapter 10, "Audit logging: how to log it". A stream's handshake must
not wait for a disk: events are queued in memory and written by one
task, up to `max_batch` per transaction, so one durable commit carries
many entries (the log's append rate comes from this batching). The
queue is bounded: past `max_pending` the writer refuses new streams
(`accepting` is false, and the service answers 503) rather than admit
work it cannot account for, and events that still arrive (a stream
ending) are counted and the count itself is written as an entry, so a
gap in the log is never silent. Stopping writes what is queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field

from ch10_compliance.audit import AuditLog
from ch10_compliance.audit_event import AuditEvent, Outcome

log = logging.getLogger("ch10_compliance")
DROPPED = "audit.events_dropped"


@dataclass
class AuditWriter:
    audit: AuditLog
    max_pending: int = 10_000
    max_batch: int = 1_000
    retry_s: float = 1.0
    retries_at_stop: int = 3
    _pending: deque[AuditEvent] = field(default_factory=deque)
    _failures: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _dropped: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False

    @property
    def accepting(self) -> bool:
        """Room for a new stream's events: admit it."""
        return len(self._pending) < self.max_pending // 2

    def record(self, event: AuditEvent) -> None:
        """Queue an event; never blocks. Safe from worker threads."""
        if len(self._pending) >= self.max_pending:
            self._dropped += 1
            return
        self._pending.append(event)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a worker thread: wake the loop safely
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._wake.set)
        else:
            self._wake.set()

    async def run(self) -> None:
        """Write until stopped, then write what is left."""
        self._loop = asyncio.get_running_loop()
        while not (self._stopping and not self._pending
                   and not self._dropped):
            if not self._pending and not self._dropped:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._write_batch()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _write_batch(self) -> None:
        batch = [self._pending.popleft()
                 for _ in range(min(self.max_batch, len(self._pending)))]
        if self._dropped:
            batch.append(AuditEvent(
                DROPPED, "system:audit", Outcome.FAILURE,
                reason="the audit queue was full",
                details={"count": self._dropped}))
            self._dropped = 0
        try:
            await asyncio.to_thread(self.audit.append, batch)
            self._failures = 0
        except Exception as error:  # the database is down: keep them
            self._failures += 1
            log.error("event=audit_write_failed entries=%d error=%s",
                      len(batch), type(error).__name__)
            if self._stopping and self._failures >= self.retries_at_stop:
                log.error("event=audit_entries_lost entries=%d",
                          len(batch) + len(self._pending))
                self._pending.clear()
                self._dropped = 0
                return
            for event in reversed(batch):
                if event.action == DROPPED:
                    self._dropped += int(event.details["count"])
                else:
                    self._pending.appendleft(event)
            await asyncio.sleep(self.retry_s)  # a pace, not a sync
