"""Revocation that reaches running streams, on every replica.

Chapter 9, "API key management: revocation" and "token refresh during
long-running streams". A stream is authenticated once, at its
handshake, and may then run for hours; revoking its key must still end
it, whichever replica serves it. Each replica runs one `KeyWatch`: every
`poll_s` it reads the keys changed since its last poll (one indexed
query, however many streams it serves), drops them from the verifier's
cache and ends the streams whose key is no longer active, which also
catches a rolled key's overlap running out; and every 30 s it reads
every key in use afresh, in case a change was missed. The database is
the replicas' shared truth: no message bus is needed for a bound of
`poll_s` plus one query.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from ch04_streaming.stream_hooks import Stop
from ch09_security.key_store import KeyRecord, KeyState
from ch09_security.key_verifier import DEVELOPMENT_OWNER, KeyVerifier

log = logging.getLogger("ch09_security")


@dataclass(eq=False)
class StreamStop:
    """One running stream's way to be told to end, and why."""

    digest: str
    _stop: Stop | None = None
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self, reason: str, expired: bool = False) -> None:
        if self._stop is None:  # the first reason stands
            self._stop = Stop(reason, expired)
            self._stopped.set()

    async def stopped(self) -> Stop:
        await self._stopped.wait()
        assert self._stop is not None
        return self._stop

    @property
    def reason(self) -> str | None:
        """Why the stream was told to end; None while it may run."""
        return self._stop.reason if self._stop is not None else None


@dataclass
class RunningStreams:
    """This replica's streams by their key's digest, and the latest
    record known of each key in use."""

    _streams: defaultdict[str, set[StreamStop]] = field(
        default_factory=lambda: defaultdict(set))
    _records: dict[str, KeyRecord] = field(default_factory=dict)

    def add(self, record: KeyRecord) -> StreamStop:
        stop = StreamStop(record.digest)
        self._streams[record.digest].add(stop)
        self._records.setdefault(record.digest, record)
        return stop

    def remove(self, stop: StreamStop) -> None:
        streams = self._streams.get(stop.digest)
        if streams is not None:
            streams.discard(stop)
            if not streams:
                del self._streams[stop.digest]
                del self._records[stop.digest]

    def refresh(self, record: KeyRecord) -> None:
        if record.digest in self._records:
            self._records[record.digest] = record

    def using(self, digest: str) -> list[StreamStop]:
        return list(self._streams.get(digest, ()))

    def keys_in_use(self) -> list[KeyRecord]:
        return list(self._records.values())

    def __len__(self) -> int:
        return sum(len(s) for s in self._streams.values())


@dataclass
class KeyWatch:
    verifier: KeyVerifier
    streams: RunningStreams
    poll_s: float = 0.5
    revalidate_every: int = 60  # polls: 30 s, as OWASP advises
    flush_every: int = 10  # polls between writes of counted uses
    # A change committed late may carry a time just before the last
    # poll: look back this far, and act on a change only once.
    lookback_ms: int = 5_000
    _seen: dict[KeyRecord, None] = field(default_factory=dict,
                                         init=False)
    _last_poll_ms: int | None = field(default=None, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event,
                                 init=False)

    # --8<-- [start:revocation_poll]
    async def poll(self) -> None:
        """Act on every key changed since the last poll."""
        now = self.verifier.clock_ms()
        since = (self._last_poll_ms or now) - self.lookback_ms
        self._last_poll_ms = now
        changed = await asyncio.to_thread(
            self.verifier.store.changed_since, since)  # off the loop
        for record in changed:
            if self._first_sight(record):
                self.verifier.learn(record)
                self.streams.refresh(record)
        # Expiry needs no change in the database (a rolled key's
        # overlap simply runs out), so every key in use is judged.
        for record in self.streams.keys_in_use():
            self.end_if_invalid(record)
    # --8<-- [end:revocation_poll]

    def end_if_invalid(self, record: KeyRecord) -> None:
        state = record.state(self.verifier.clock_ms())
        if state is KeyState.ACTIVE:
            return
        for stream in self.streams.using(record.digest):
            stream.stop(f"API key {state}")
            log.info("event=stream_ended key_id=%s state=%s",
                     record.key_id, state)

    async def flush_uses(self) -> None:
        uses = self.verifier.take_uses()
        if uses:
            await asyncio.to_thread(self.verifier.store.record_use, uses)

    async def revalidate(self) -> None:
        """Read every key in use afresh: a change missed is caught."""
        in_use = [r for r in self.streams.keys_in_use()
                  if r.owner != DEVELOPMENT_OWNER]  # not in the database
        current = await asyncio.to_thread(
            lambda: [self.verifier.store.find_digest(r.digest)
                     for r in in_use])
        for record, now in zip(in_use, current, strict=True):
            if now is None:
                for stream in self.streams.using(record.digest):
                    stream.stop("API key deleted")
                continue
            self.verifier.learn(now)
            self.streams.refresh(now)
            self.end_if_invalid(now)

    async def run(self) -> None:
        """Poll until `stop()`. A poll under way is never cut off: its
        database call finishes, and its connection goes back to the
        pool before the pool is closed."""
        polls = 0
        while not await self._stopping(self.poll_s):
            polls += 1
            try:
                await self.poll()
                if polls % self.revalidate_every == 0:
                    await self.revalidate()
                if polls % self.flush_every == 0:
                    await self.flush_uses()
            except Exception:  # a database hiccup must not stop the watch
                log.exception("event=key_watch_failed")

    def stop(self) -> None:
        self._stop.set()

    async def _stopping(self, within_s: float) -> bool:
        """Wait `within_s` for `stop()`; True if it came."""
        try:
            async with asyncio.timeout(within_s):
                await self._stop.wait()
        except TimeoutError:
            return False
        return True

    def _first_sight(self, record: KeyRecord) -> bool:
        if record in self._seen:  # the same version of the same key
            return False
        self._seen[record] = None
        while len(self._seen) > 10_000:  # bounded: oldest marks go
            del self._seen[next(iter(self._seen))]
        return True
