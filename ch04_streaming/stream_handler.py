"""One WebSocket connection: read audio, send results, close clearly.

Chapter 4, "Buffering strategies" and chapter 5's backpressure. Three
tasks serve a connection: the reader feeds the session and handles
control messages, the session's decode loop produces events, and the
sender drains a bounded outbox to the socket. A client that stops
reading fills the outbox and is closed with a reason instead of growing
server memory; idle clients, bad audio and bad messages each get their
dialect's close code; a server shutdown finishes open utterances first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from ch04_streaming.audio import (
    AudioDecoder,
    AudioFormatError,
    parse_wav_header,
    sniff_container,
)
from ch04_streaming.dialects.dialect import (
    Closing,
    Control,
    ControlError,
    Dialect,
    DialectStream,
    Message,
    StreamRequest,
)
from ch04_streaming.engine import Recognizer
from ch04_streaming.metrics import ServiceMetrics
from ch04_streaming.session import (
    SessionEvent,
    StreamSession,
    TranscriptEvent,
)
from ch04_streaming.stream_hooks import NoTracker, StreamTracker
from ch04_streaming.vad import build_vad_gate

log = logging.getLogger("ch04_streaming")


class SlowConsumerError(Exception):
    """The client is not reading what the server sends."""


class BadInputError(Exception):
    def __init__(self, closing: Closing) -> None:
        super().__init__(closing.reason)
        self.closing = closing


@dataclass(frozen=True)
class ConnectionLimits:
    send_queue: int = 64  # messages waiting for a slow reader
    max_pending_audio_s: float = 10.0
    drain_timeout_s: float = 5.0  # to finish open utterances at the end
    realtime_allowance_s: float = 2.0  # audio ahead of the clock, at most


# --8<-- [start:outbox]
@dataclass
class Outbox:
    """Messages for one client; bounded, so a non-reader costs nothing."""

    connection: ServerConnection
    limit: int
    _queue: asyncio.Queue[str] = field(init=False)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.limit)

    def put(self, message: Message) -> None:
        try:
            self._queue.put_nowait(json.dumps(message))
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


@dataclass(eq=False)  # identity: handlers live in the server's set
class StreamHandler:
    connection: ServerConnection
    dialect: Dialect
    request: StreamRequest
    recognizer: Recognizer
    limits: ConnectionLimits
    metrics: ServiceMetrics | None = None
    clock: Callable[[], float] = time.monotonic
    tracker: StreamTracker = field(default_factory=NoTracker)
    stream: DialectStream = field(init=False)
    outbox: Outbox = field(init=False)
    session: StreamSession = field(init=False)
    _shutting_down: bool = field(default=False, init=False)
    _idle: bool = field(default=False, init=False)
    _reader: asyncio.Task[Closing] | None = field(default=None, init=False)
    _answered: set[float] = field(default_factory=set, init=False)
    waiting_since: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.waiting_since = self.clock()
        self.stream = self.dialect.open_stream(self.request)
        self.outbox = Outbox(self.connection, self.limits.send_queue)
        self.session = StreamSession(
            options=self.request.options,
            recognizer=self.recognizer,
            audio=AudioDecoder(self.request.encoding,
                               self.request.sample_rate),
            vad=build_vad_gate(self.request.vad),
            emit=self._emit,
            max_pending_s=self.limits.max_pending_audio_s,
            clock=self.clock,
        )

    def _emit(self, event: SessionEvent) -> None:
        if isinstance(event, TranscriptEvent) and self.metrics is not None:
            self._observe(event, self.metrics)
        for message in self.stream.encode(event):
            self.outbox.put(message)

    def _observe(self, event: TranscriptEvent,
                 metrics: ServiceMetrics) -> None:
        """Time results from the arrival of the audio of their words."""
        words, now = event.hypothesis.words, self.clock()
        if not words:
            return
        arrivals, dialect = self.session.arrivals, self.dialect.name
        if event.start_s not in self._answered:
            self._answered.add(event.start_s)
            heard = arrivals.time_of(words[0].start)
            if heard is not None:
                metrics.first_result.labels(dialect).observe(now - heard)
        if event.hypothesis.is_final:
            self._answered.discard(event.start_s)
            heard = arrivals.time_of(words[-1].end)
            if heard is not None:
                metrics.final_latency.labels(dialect).observe(now - heard)

    def shutdown(self) -> None:
        """Server is stopping: finish open utterances, then close 1001."""
        self._shutting_down = True
        if self._reader is not None:
            self._reader.cancel()

    def expire_if_idle(self, now: float) -> None:
        """Close a stream that sent nothing for its idle timeout.

        The server's sweeper calls this once in a while for every
        stream, which costs far less than a timer around every frame.
        """
        idle_s = now - self.waiting_since
        waiting_on_us = not self.session.has_room
        if (idle_s >= self.request.idle_timeout_s and self._reader
                and not waiting_on_us):
            self._idle = True
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

    def _outcome(self, task: asyncio.Task[object]) -> Closing | None:
        """How to close, given the first task that finished."""
        codes = self.dialect.codes
        if task.cancelled():
            if self._shutting_down:
                return codes.shutdown
            return codes.idle if self._idle else None
        error = task.exception()
        if error is None:
            result = task.result()
            return result if isinstance(result, Closing) else None
        if isinstance(error, ConnectionClosed):
            return None  # the client left: nothing to say to it
        if isinstance(error, SlowConsumerError):
            return codes.slow_consumer.because(str(error))
        if isinstance(error, BadInputError):
            return error.closing
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
        await self.connection.close(closing.code, closing.reason)
        return closing

    # --8<-- [start:read_loop]
    async def _read(self) -> Closing:
        codes = self.dialect.codes
        first_frame, started = True, self.clock()
        while True:
            await self.session.wait_for_room()  # backpressure
            self.waiting_since = self.clock()  # idle: waiting on the client
            frame = await self.connection.recv()
            if isinstance(frame, str):
                try:
                    control = self.dialect.parse_control(frame)
                except ControlError as error:
                    return codes.bad_control.because(str(error))
                if control is Control.FINALIZE:
                    self.session.finalize()
                elif control is Control.CLOSE:
                    return codes.done
                continue
            if first_frame:
                frame, first_frame = self._strip_header(frame), False
            self.stream.on_audio(frame)
            try:
                seconds = self.session.accept_audio(frame)
            except AudioFormatError as error:
                return codes.bad_audio.because(str(error))
            if over_limit := await self.tracker.audio(seconds):
                return codes.over_limit.because(over_limit)
            if self._too_fast(started):
                return codes.too_fast or codes.done
    # --8<-- [end:read_loop]

    def _too_fast(self, started: float) -> bool:
        if self.dialect.codes.too_fast is None:
            return False
        elapsed = self.clock() - started
        ahead = self.session.stats.received_s - elapsed
        return ahead > self.limits.realtime_allowance_s

    def _strip_header(self, frame: bytes) -> bytes:
        """Accept a WAV header that matches the request; refuse others."""
        container = sniff_container(frame)
        if container is None:
            return frame
        bad = self.dialect.codes.bad_audio
        if container != "wav":
            raise BadInputError(bad.because(
                f"{container} container: send raw audio as declared"))
        try:
            wav = parse_wav_header(frame)
        except AudioFormatError as error:
            raise BadInputError(bad.because(str(error))) from None
        declared = (self.request.encoding, self.request.sample_rate, 1)
        if (wav.encoding, wav.sample_rate, wav.channels) != declared:
            raise BadInputError(bad.because(
                f"declared {declared[0]} {declared[1]} Hz mono, but the"
                f" WAV holds {wav.encoding or 'other'} {wav.sample_rate} Hz"
                f" with {wav.channels} channel(s)"))
        return frame[wav.header_bytes:]
