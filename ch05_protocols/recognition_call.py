"""One gRPC recognition call, driven on chapter 4's session core.

Chapter 5, "gRPC bidirectional streaming". The same three parts as
chapter 4's WebSocket handler: a reader feeds the session, the
session's decode loop produces events, and a bounded queue holds the
responses until gRPC sends them. How the call ends is decided here: the
client's half-close, a limit of time, or a server shutdown first
finishes open utterances and sends their finals, then the billed
duration, then the status; a client's mistake ends it at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from ch04_streaming.audio import AudioFormatError, strip_declared_header
from ch04_streaming.backpressure import FrameTooLongError
from ch04_streaming.dialects.dialect import StreamRequest
from ch04_streaming.scheduler import DecodeUnavailableError
from ch04_streaming.session import Session, SessionEvent
from ch04_streaming.stream_handler import SessionFactory
from ch04_streaming.stream_hooks import (
    StoppableTracker,
    StreamTracker,
    device_time_of,
)
from ch05_protocols.deadline import DeadlineExpiredError
from ch05_protocols.grpc_results import ResponseEncoder
from ch05_protocols.requests import CallEndedError, RequestReader, audio_of
from ch05_protocols.speech.v1.speech_pb2 import StreamingRecognizeResponse

log = logging.getLogger("ch05_protocols")

SHUTDOWN = CallEndedError(
    grpc.StatusCode.UNAVAILABLE, "server shutting down: the results sent"
    " are final; open a new stream for more audio", orderly=True)


class SlowConsumerError(Exception):
    """The client is not reading its responses."""


@dataclass(frozen=True)
class CallLimits:
    max_audio_bytes: int = 25 * 1024
    send_queue: int = 64  # responses waiting for a slow reader
    drain_timeout_s: float = 5.0  # to finish open utterances at the end


@dataclass
class ResponseQueue:
    """Responses for one client, bounded; the call's end comes last."""

    limit: int
    _items: deque[StreamingRecognizeResponse] = field(default_factory=deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    ending: CallEndedError | None = None
    ended: bool = False  # False at the end: the client left first

    def put(self, response: StreamingRecognizeResponse) -> None:
        if len(self._items) >= self.limit:
            raise SlowConsumerError(
                f"{self.limit} responses unread: client is not reading")
        self._items.append(response)
        self._ready.set()

    def end(self, ending: CallEndedError | None) -> None:
        """No more responses; None: the call ends with OK."""
        self.ending, self.ended = ending, True
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[StreamingRecognizeResponse]:
        while True:
            await self._ready.wait()
            while self._items:
                yield self._items.popleft()
            if self.ended:
                return
            self._ready.clear()


@dataclass(eq=False)
class RecognitionCall:
    requests: RequestReader
    request: StreamRequest
    new_session: SessionFactory
    limits: CallLimits
    tracker: StreamTracker
    stream_id: str
    session: Session = field(init=False)
    queue: ResponseQueue = field(init=False)
    encoder: ResponseEncoder = field(init=False)
    _reader: asyncio.Task[None] | None = field(default=None, init=False)
    _ending: CallEndedError | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.queue = ResponseQueue(self.limits.send_queue)
        self.encoder = ResponseEncoder(self.request.options)
        self.session = self.new_session(self.request, self._emit)
        self.session.device_time = device_time_of(self.tracker)

    def _emit(self, event: SessionEvent) -> None:
        for response in self.encoder.encode(event):
            self.queue.put(response)

    def shutdown(self) -> None:
        """The server is stopping: finish open utterances, then end."""
        if self._reader is not None and self._ending is None:
            self._ending = SHUTDOWN
            self._reader.cancel()

    async def responses(self) -> AsyncIterator[StreamingRecognizeResponse]:
        """Every response of the call; `queue.ending` then says how the
        call ends."""
        driver = asyncio.create_task(self._drive())
        try:
            async for response in self.queue:
                yield response
        finally:
            driver.cancel()  # the client left: free everything at once
            await asyncio.gather(driver, return_exceptions=True)

    async def _drive(self) -> None:
        self._reader = asyncio.create_task(self._read())
        decoder = asyncio.create_task(self.session.run())
        tasks = {self._reader, decoder}
        if isinstance(self.tracker, StoppableTracker):
            tasks.add(asyncio.create_task(self._stop_when(self.tracker)))
        try:
            done, _ = await asyncio.wait(
                tasks, return_when=asyncio.FIRST_COMPLETED)
            ending = self._outcome(done.pop())
            if ending is None or ending.orderly:
                ending = await self._finish(ending, decoder)
            self.queue.end(ending)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _stop_when(self, tracker: StoppableTracker) -> None:
        """Chapter 9 ends a call whose key is revoked (at once) or whose
        token's session time is up (its finals first)."""
        stop = await tracker.stopped()
        if stop.expired:
            raise CallEndedError(grpc.StatusCode.OUT_OF_RANGE, stop.reason,
                                 orderly=True)
        raise CallEndedError(grpc.StatusCode.UNAUTHENTICATED,
                             f"credential no longer valid: {stop.reason}")

    def _outcome(self, task: asyncio.Task[None]) -> CallEndedError | None:
        """How to end, given the first task that finished."""
        if task.cancelled():
            return self._ending
        error = task.exception()
        if error is None or isinstance(error, CallEndedError):
            return error
        if isinstance(error, DeadlineExpiredError):
            return CallEndedError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                  f"{error}: no more audio is decoded")
        if isinstance(error, SlowConsumerError):
            return CallEndedError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  str(error))
        if isinstance(error, DecodeUnavailableError):
            return CallEndedError(grpc.StatusCode.UNAVAILABLE, str(error))
        log.error("event=stream_failed stream=%s", self.stream_id,
                  exc_info=error)
        return CallEndedError(grpc.StatusCode.INTERNAL, "internal error")

    async def _finish(self, ending: CallEndedError | None,
                      decoder: asyncio.Task[None]) -> CallEndedError | None:
        """Finals for the audio received, then the billed duration."""
        try:
            self.session.finalize()
            async with asyncio.timeout(self.limits.drain_timeout_s):
                await self.session.drained()
            if decoder.done():  # it failed while finishing
                return self._outcome(decoder)
            self.queue.put(self.encoder.closing(
                self.session.stats.received_s))
        except SlowConsumerError as error:
            return CallEndedError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  str(error))
        except TimeoutError:
            return CallEndedError(
                grpc.StatusCode.UNAVAILABLE, "finals not ready within"
                f" {self.limits.drain_timeout_s:g} s")
        return ending

    async def _read(self) -> None:
        """Feed the session until the client has sent everything."""
        first = True
        while (request := await self.requests.next()) is not None:
            await self._accept(
                audio_of(request, self.limits.max_audio_bytes), first)
            first = False

    async def _accept(self, audio: bytes, first: bool) -> None:
        request = self.request
        try:
            if first:  # only a stream's first audio may carry a header
                audio = strip_declared_header(audio, request.encoding,
                                              request.sample_rate)
            seconds = self.session.audio.duration_of(audio)
            await self.session.cap.make_room(seconds)  # backpressure
            self.session.accept_audio(audio)
        except (AudioFormatError, FrameTooLongError) as error:
            raise CallEndedError(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"invalid audio: {error}") from None
        if over_limit := await self.tracker.audio(seconds):
            raise CallEndedError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"usage limit: {over_limit}")
