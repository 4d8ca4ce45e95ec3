"""One WebSocket connection: read audio, send results, close clearly.

Chapter 4, "Buffering strategies". Three tasks serve a connection: the
reader has the dialect read each frame (audio, a control message, or a
frame it refuses), feeds the session and handles controls; the session's
decode loop produces events, and the sender drains the bounded outbox
to the socket. The handler decides how a stream ends: each way a client
can go wrong gets its dialect's close code and a reason, and an orderly
end (the client's close, or a server shutdown) finishes open utterances
first. What the stream is made of (decoder, VAD, scheduler) comes from
the session factory the composition root hands in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.typing import Data

from ch04_streaming.audio import AudioFormatError, strip_declared_header
from ch04_streaming.backpressure import (
    FrameTooLongError,
    Outbox,
    SlowConsumerError,
)
from ch04_streaming.containers import (
    MAGIC_BYTES,
    ContainerDecoder,
    ContainerLimits,
    opened_container,
    pcm_decoder,
)
from ch04_streaming.dialects.dialect import (
    AnsweringStream,
    ClientEvent,
    Closing,
    Control,
    Dialect,
    DialectStream,
    StreamRequest,
)
from ch04_streaming.metrics import ServiceMetrics
from ch04_streaming.pacing import IdleTimer, Pace, PacingError
from ch04_streaming.result_latency import ResultLatency
from ch04_streaming.scheduler import DecodeUnavailableError
from ch04_streaming.session import (
    Emit,
    Session,
    SessionEvent,
    StreamSession,
    TranscriptEvent,
)
from ch04_streaming.stream_hooks import (
    NoTracker,
    StoppableTracker,
    StreamTracker,
    device_time_of,
)

log = logging.getLogger("ch04_streaming")

# The composition root's recipe for one stream's pipeline.
SessionFactory = Callable[[StreamRequest, Emit], Session]


class Connection(Protocol):
    """What the handler needs of a WebSocket connection."""

    @property
    def state(self) -> State: ...

    @property
    def input_ended(self) -> bool:
        """The client shut its sending side; an empty binary message
        then marks the end of what it sent."""
        ...

    async def recv(self) -> Data: ...

    async def send(self, message: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True)
class ConnectionLimits:
    send_queue: int = 64  # messages waiting for a slow reader
    max_pending_audio_s: float = 10.0
    drain_timeout_s: float = 5.0  # to finish open utterances at the end
    max_session_s: float = 3 * 3600.0  # AssemblyAI's limit; KeepAlives
    # alone must not hold a stream slot for ever
    container: ContainerLimits = field(default_factory=ContainerLimits)


@dataclass(eq=False)  # identity: handlers live in the server's set
class StreamHandler:
    connection: Connection
    dialect: Dialect
    request: StreamRequest
    new_session: SessionFactory
    limits: ConnectionLimits
    metrics: ServiceMetrics | None = None  # None: results not timed
    clock: Callable[[], float] = time.monotonic
    tracker: StreamTracker = field(default_factory=NoTracker)
    stream: DialectStream = field(init=False)
    outbox: Outbox = field(init=False)
    session: Session = field(init=False)
    idle: IdleTimer = field(init=False)
    _timer: ResultLatency | None = field(default=None, init=False)
    _ending: Closing | None = field(default=None, init=False)  # ours
    started: float = field(init=False)
    _reader: asyncio.Task[Closing] | None = field(default=None, init=False)
    _header_checked: bool = field(default=False, init=False)
    _first_bytes: bytes = field(default=b"", init=False)
    _container: ContainerDecoder | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.stream = self.dialect.open_stream(self.request)
        self.outbox = Outbox(self.connection, self.limits.send_queue)
        self.session = self.new_session(self.request, self._emit)
        self.session.device_time = device_time_of(self.tracker)
        self.idle = IdleTimer(self.request.idle_timeout_s, self.clock)
        self.started = self.clock()
        if self.metrics is not None:
            self._timer = ResultLatency(self.metrics, self.dialect.name,
                                        self.session.channel_arrivals,
                                        self.clock)

    def _emit(self, event: SessionEvent) -> None:
        if isinstance(event, TranscriptEvent) and self._timer is not None:
            self._timer.observe(event)
        for message in self.stream.encode(event):
            self.outbox.put(message)

    def shutdown(self) -> None:
        """Server is stopping: finish open utterances, then close 1001."""
        self._end(self.dialect.codes.shutdown)

    def sweep(self, now: float) -> None:
        """Close a stream whose client sent nothing for its timeout, or
        that has been open longer than any session may be.

        The server's sweeper calls this once in a while for every
        stream, which costs far less than a timer around every frame.
        """
        codes = self.dialect.codes
        if self.idle.expired(now):
            self._end(codes.idle)
        elif now - self.started >= self.limits.max_session_s:
            self._end(codes.expired)

    @property
    def ended_by_policy(self) -> bool:
        """Closed for idleness or age: the client's doing, no error."""
        codes = self.dialect.codes
        return self._ending in (codes.idle, codes.expired)

    def _end(self, closing: Closing) -> None:
        if self._reader is not None and self._ending is None:
            self._ending = closing
            self._reader.cancel()

    async def run(self) -> Closing | None:
        """Serve the stream; return how it was closed (None: by the
        client)."""
        for message in self.stream.opening():
            self.outbox.put(message)
        sender = asyncio.create_task(self.outbox.run())
        decoder = asyncio.create_task(self.session.run())
        self._reader = asyncio.create_task(self._read())
        tasks = {sender, decoder, self._reader}
        if isinstance(self.tracker, StoppableTracker):
            tasks.add(asyncio.create_task(self._stop_when(self.tracker)))
        try:
            done, _ = await asyncio.wait(
                tasks, return_when=asyncio.FIRST_COMPLETED
            )
            closing = self._outcome(done.pop())
            if closing is not None:
                closing = await self._close(closing, {sender, decoder})
            return closing
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._container is not None:
                await self._container.aclose()  # its thread ends here

    async def _stop_when(self, tracker: StoppableTracker) -> Closing:
        """A revoked credential closes at once, with no more results; a
        session whose time is up closes as an expired one does."""
        stop = await tracker.stopped()
        codes = self.dialect.codes
        return codes.expired if stop.expired else codes.revoked.because(
            stop.reason)

    def _outcome(self, task: asyncio.Task[object]) -> Closing | None:
        """How to close, given the first task that finished."""
        codes = self.dialect.codes
        if task.cancelled():
            return self._ending
        error = task.exception()
        if error is None:
            result = task.result()
            return result if isinstance(result, Closing) else None
        if isinstance(error, ConnectionClosed):
            return None  # the client left: nothing to say to it
        if isinstance(error, SlowConsumerError):
            return codes.slow_consumer.because(str(error))
        if isinstance(error, DecodeUnavailableError):
            # 1013, "try again later": the server's state, not the
            # client's fault (a close reason holds at most 123 bytes).
            return Closing(1013, str(error)[:123])
        log.error("stream failed", exc_info=error)
        return Closing(1011, "internal error")

    async def _close(self, closing: Closing, running: set[asyncio.Task[None]]
                     ) -> Closing:
        """Finish open utterances if the close is orderly, then close."""
        orderly = (
            closing.code in (1000, 1001)
            and self.connection.state is State.OPEN
            and all(not t.done() for t in running)
        )
        if orderly:
            try:
                await self._container_tail()
                self.session.finalize()
                async with asyncio.timeout(self.limits.drain_timeout_s):
                    await self.session.drained()
                for message in self.stream.closing(self.session.stats):
                    self.outbox.put(message)
                await self.outbox.flush(self.limits.drain_timeout_s)
            except (TimeoutError, SlowConsumerError):
                closing = self.dialect.codes.slow_consumer.because(
                    "results not delivered in time"
                )
            except AudioFormatError as error:  # the container's tail
                closing = self.dialect.codes.bad_audio.because(str(error))
        await self.connection.close(closing.code, closing.reason)
        return closing

    # --8<-- [start:read_loop]
    async def _read(self) -> Closing:
        pace = Pace(self.dialect.pacing, self.clock)
        while True:
            self.idle.waiting()  # from here on, it is the client's turn
            frame = await self.connection.recv()
            self.idle.busy()
            if frame == b"" and self.connection.input_ended:
                return self.dialect.codes.done  # results, then close
            inbound = self.dialect.read_frame(frame)
            if isinstance(inbound, Closing):
                return inbound  # a frame this dialect does not take
            if isinstance(inbound, ClientEvent):
                closing = self._answer(inbound)
            elif isinstance(inbound, Control):
                closing = self._control(inbound)
            else:
                closing = await self._audio(inbound, pace)
            if closing is not None:
                return closing
    # --8<-- [end:read_loop]

    # --8<-- [start:audio_frame]
    async def _audio(self, frame: bytes, pace: Pace) -> Closing | None:
        codes = self.dialect.codes
        sent = frame
        try:
            frame = await self._unpack(frame)  # a container's PCM
            frame = self._strip_header(frame)
            seconds = self.session.audio.duration_of(frame)
            pace.check(seconds)
            await self.session.cap.make_room(seconds)  # backpressure
            self.stream.on_audio(sent)  # what the client sent
            self.session.accept_audio(frame)
        except (AudioFormatError, FrameTooLongError) as error:
            return codes.bad_audio.because(str(error))
        except PacingError as error:
            return codes.pacing.because(str(error))
        if over_limit := await self.tracker.audio(seconds):
            return codes.over_limit.because(over_limit)
        return None
    # --8<-- [end:audio_frame]

    def _answer(self, event: ClientEvent) -> Closing | None:
        """An event the dialect's stream answers, the stream going on."""
        if not isinstance(self.stream, AnsweringStream):
            return self.dialect.codes.bad_control
        answer = self.stream.answer(event)
        for message in answer.messages:
            self.outbox.put(message)
        return None if answer.control is None else self._control(
            answer.control)

    def _control(self, control: Control) -> Closing | None:
        if control is Control.FINALIZE:
            self.session.finalize()
        return self.dialect.codes.done if control is Control.CLOSE else None

    async def _unpack(self, frame: bytes) -> bytes:
        """A container's frames -> the PCM they let out; raw audio as
        sent. The first bytes tell which, and a client may drip them."""
        if self._container is not None:
            return await self._container.decode(frame)
        if self._header_checked or not self.request.containers:
            return frame
        self._first_bytes += frame
        if len(self._first_bytes) < MAGIC_BYTES:
            return b""
        frame, self._first_bytes = self._first_bytes, b""
        container = opened_container(frame, self.request.containers,
                                     self.request.container_required)
        if container is None:
            return frame
        self._header_checked = True  # no WAV header inside a container
        if not isinstance(self.session, StreamSession):
            raise AudioFormatError("channels are split from raw audio only")
        self.session.audio = pcm_decoder()  # its rate is the header's
        self._container = ContainerDecoder(container, self.limits.container)
        return await self._container.decode(frame)

    async def _container_tail(self) -> None:
        """An orderly end: the container's last audio is heard (and
        billed) before the session's final flush."""
        if self._container is None:
            return
        tail = await self._container.finish()
        self.session.accept_audio(tail)
        await self.tracker.audio(self.session.audio.duration_of(tail))

    def _strip_header(self, frame: bytes) -> bytes:
        """Only a stream's first frame may carry a WAV header."""
        if self._header_checked or not frame:
            return frame
        self._header_checked = True
        return strip_declared_header(frame, self.request.encoding,
                                     self.request.sample_rate,
                                     self.request.channels)
