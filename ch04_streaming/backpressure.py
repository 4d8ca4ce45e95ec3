"""Backpressure: what one stream may hold, and what happens past it.

Chapter 4, "Buffering strategies". Two bounds keep a stream's memory
fixed whatever its client does. Going out, results wait in a bounded
outbox; a client that stops reading fills it and is cut with a reason
(the slow-consumer policy), since buffering for it without end would
cost every other stream. Coming in, undecoded audio is capped in
seconds and each frame is measured before it is accepted: a frame longer
than the cap is refused, and while the cap is full the reader waits,
which stops reading the socket and pushes back on the client.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from ch04_streaming.wire import WireMessage


class SlowConsumerError(Exception):
    """The client is not reading what the server sends."""


class FrameTooLongError(ValueError):
    """One frame holds more audio than a stream may have undecoded."""


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
        if frame_s > self.max_s:
            raise FrameTooLongError(
                f"a frame of {frame_s:.2f} s of audio; at most"
                f" {self.max_s:g} s may wait for decoding")
        while self.pending_s and self.pending_s + frame_s > self.max_s:
            self._changed.clear()
            await self._changed.wait()  # the reader stops reading
# --8<-- [end:pending_audio_cap]
