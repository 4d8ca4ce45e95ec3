"""Backpressure: what one stream may hold, and what happens past it.

Chapter 4, "Buffering strategies". Two bounds keep a stream's memory
fixed whatever its client does. Going out, results wait in a bounded
outbox; a client that stops reading fills it and is cut with a reason
(the slow-consumer policy), since buffering for it without end would
cost every other stream. Coming in, undecoded audio is capped in
seconds and each frame is measured before it is accepted: a frame longer
than the cap is refused, and while the cap is full the reader waits,
which stops reading the socket and pushes back on the client. Chapter 5,
"WebSocket for audio", adds a second policy behind the same cap, opt-in
per stream: drop the oldest undecoded audio instead, so a stream that
fell behind (after a stalled link) is live again at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from ch04_streaming.wire import WireMessage


class SlowConsumerError(Exception):
    """The client is not reading what the server sends."""


class FrameTooLongError(ValueError):
    """One frame holds more audio than a stream may have undecoded."""


class Backpressure(StrEnum):
    """What a stream does when its undecoded audio reaches the cap."""

    BUFFER = "buffer"  # wait: the reader stops, TCP pushes back
    DROP = "drop"  # drop the oldest undecoded audio, stay live


class UndecodedAudio(Protocol):
    """The session's undecoded audio, as a dropping policy sees it."""

    def drop_oldest(self, seconds: float) -> float:
        """Drop up to `seconds` of the oldest audio; return how much."""
        ...


class TextSink(Protocol):
    async def send(self, message: str) -> None: ...


# --8<-- [start:outbox]
@dataclass
class Outbox:
    """Messages for one client; bounded, so a non-reader costs nothing."""

    connection: TextSink
    limit: int
    _queue: asyncio.Queue[str] = field(init=False)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.limit)

    def put(self, message: WireMessage) -> None:
        try:
            self._queue.put_nowait(message.to_json())
        except asyncio.QueueFull:
            raise SlowConsumerError(
                f"{self.limit} messages unread: client is not reading"
            ) from None

    async def run(self) -> None:
        while True:
            text = await self._queue.get()
            await self.connection.send(text)
            self._queue.task_done()
# --8<-- [end:outbox]

    async def flush(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            await self._queue.join()


# --8<-- [start:pending_audio_cap]
@dataclass
class PendingAudioCap:
    """Undecoded audio of one stream, in seconds, and its ceiling."""

    max_s: float
    pending_s: float = 0.0
    peak_s: float = 0.0  # the most that ever waited
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def update(self, pending_s: float) -> None:
        """The session reports what is still undecoded."""
        self.pending_s = pending_s
        self.peak_s = max(self.peak_s, pending_s)
        self._changed.set()

    async def make_room(self, frame_s: float) -> None:
        """Wait until a frame fits under the cap; refuse one that never
        could, whatever the decoder does."""
        self.refuse_longer_than_cap(frame_s)
        while self.pending_s and self.pending_s + frame_s > self.max_s:
            self._changed.clear()
            await self._changed.wait()  # the reader stops reading
# --8<-- [end:pending_audio_cap]

    def refuse_longer_than_cap(self, frame_s: float) -> None:
        if frame_s > self.max_s:
            raise FrameTooLongError(
                f"a frame of {frame_s:.2f} s of audio; at most"
                f" {self.max_s:g} s may wait for decoding")

    def attach(self, audio: UndecodedAudio) -> None:
        """The session whose audio this cap bounds: waiting needs
        nothing of it, dropping does."""

    @property
    def dropped_s(self) -> float:
        return 0.0  # a cap that waits never drops


# --8<-- [start:drop_stale_audio]
@dataclass
class DropStaleAudio(PendingAudioCap):
    """The same cap, the other policy: a frame that does not fit makes
    room by dropping the oldest undecoded audio, never by waiting."""

    _audio: UndecodedAudio | None = field(default=None, init=False)
    _dropped_s: float = field(default=0.0, init=False)

    def attach(self, audio: UndecodedAudio) -> None:
        self._audio = audio

    @property
    def dropped_s(self) -> float:
        return self._dropped_s

    async def make_room(self, frame_s: float) -> None:
        self.refuse_longer_than_cap(frame_s)
        excess = self.pending_s + frame_s - self.max_s
        if excess > 0 and self._audio is not None:
            # Audio this late is worth less than the live stream: every
            # second kept is a second the listener waits for all later
            # words, while a second dropped costs only its own words.
            self._dropped_s += self._audio.drop_oldest(excess)
# --8<-- [end:drop_stale_audio]


def pending_audio_cap(policy: Backpressure, max_s: float
                      ) -> PendingAudioCap:
    """The cap of one stream, with the policy its client asked for."""
    if policy is Backpressure.DROP:
        return DropStaleAudio(max_s)
    return PendingAudioCap(max_s)
