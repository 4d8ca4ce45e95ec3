"""One gate for every recognition service on a server: who may start a
stream, who is still open, and how they all end on a drain.

Chapter 5, "gRPC bidirectional streaming". Our `speech.v1` service and
Google's `StreamingRecognize` share a server and its model, so they
share its limits too: a stream counts against the cap whichever API it
came through, a server loading or draining refuses both, and a drain
asks every open stream to finish its utterance and waits for all of
them within the grace period. Streams admitted here then meet chapter
4's hooks (chapter 8 meters and limits there), whose HTTP-style
refusals become the gRPC status codes below.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc

from ch04_streaming.engine import Recognizer

log = logging.getLogger("ch05_protocols")

# chapter 4's refusals by HTTP status, as gRPC status codes
REFUSAL_CODES: Mapping[int, grpc.StatusCode] = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def refusal_code(http_status: int) -> grpc.StatusCode:
    return REFUSAL_CODES.get(http_status,
                             grpc.StatusCode.FAILED_PRECONDITION)


def text_metadata(metadata: Iterable[tuple[str, str | bytes]]
                  ) -> dict[str, str]:
    """A call's text metadata by (lower-case) name; binary is left out."""
    return {name.lower(): value for name, value in metadata
            if isinstance(value, str)}


@dataclass(frozen=True)
class Refused:
    code: grpc.StatusCode
    details: str


@dataclass(eq=False)
class Slot:
    """One open stream, and how to end it in order on a drain."""

    _end: Callable[[], None] | None = None
    _stopping: bool = False

    def on_stop(self, end: Callable[[], None]) -> None:
        """How the stream ends in order, once it has begun; at once if
        the drain came first."""
        self._end = end
        if self._stopping:
            end()

    def stop(self) -> None:
        self._stopping = True
        if self._end is not None:
            self._end()


@dataclass(eq=False)
class StreamGate:
    recognizer: Recognizer  # asked only whether it is ready
    max_streams: int
    draining: bool = False
    slots: set[Slot] = field(default_factory=set)
    _empty: asyncio.Event = field(default_factory=asyncio.Event,
                                  init=False)

    def __post_init__(self) -> None:
        self._empty.set()

    @property
    def streams(self) -> int:
        return len(self.slots)

    def refusal(self, time_remaining: float | None) -> Refused | None:
        """Why a new stream cannot start now; None if it can."""
        if time_remaining is not None and time_remaining <= 0:
            return Refused(grpc.StatusCode.DEADLINE_EXCEEDED,
                           "deadline passed before the stream started:"
                           " nothing was decoded")
        if self.draining or not self.recognizer.ready:
            why = "server is draining" if self.draining else "model loading"
            return Refused(grpc.StatusCode.UNAVAILABLE,
                           f"{why}: retry in 1 s")
        if self.streams >= self.max_streams:
            return Refused(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f"at capacity: {self.max_streams} streams;"
                           " retry in 1 s")
        return None

    @contextmanager
    def holding(self) -> Iterator[Slot]:
        """A slot for the stream while it lasts, however it ends."""
        slot = Slot()
        self.slots.add(slot)
        self._empty.clear()
        try:
            yield slot
        finally:
            self.slots.discard(slot)
            if not self.slots:
                self._empty.set()

    async def emptied(self) -> None:
        """Return once no stream is open."""
        await self._empty.wait()

    async def drain(self, grace_s: float) -> None:
        """Refuse new streams; let open ones finish their utterances."""
        self.draining = True
        for slot in list(self.slots):
            slot.stop()
        try:
            async with asyncio.timeout(grace_s):
                await self.emptied()
        except TimeoutError:
            log.warning("event=shutdown_grace_over streams=%d",
                        self.streams)
