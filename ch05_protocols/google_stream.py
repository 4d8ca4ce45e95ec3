"""One `StreamingRecognize` call: config, audio, results, and its end.

Chapter 5, "gRPC bidirectional streaming: protobuf for audio chunks,
deadline propagation, Google's approach". gRPC gives each call a stream
of request messages in and a stream of responses out, both flow
controlled by HTTP/2. A reader task takes the config, then audio, under
two clocks: the gap between audio messages (Google's audio timeout) and
the whole call (Google's ~5 minute limit). Chapter 4's session decodes;
its events become responses in a bounded queue that the servicer yields
from. The call ends in order when the client half-closes (the last
finals, then `total_billed_time`), and otherwise with the status of what
went wrong.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.cloud.speech_v1.types import (
    StreamingRecognizeRequest,
    StreamingRecognizeResponse,
)

from ch04_streaming.audio import AudioFormatError, strip_declared_header
from ch04_streaming.backpressure import FrameTooLongError, SlowConsumerError
from ch04_streaming.dialects.dialect import StreamDefaults, StreamRequest
from ch04_streaming.scheduler import DecodeUnavailableError
from ch04_streaming.session import (
    Session,
    SessionEvent,
    TranscriptEvent,
)
from ch04_streaming.stream_handler import SessionFactory
from ch04_streaming.stream_hooks import (
    StoppableTracker,
    StreamTracker,
    device_time_of,
)
from ch05_protocols.deadline import DeadlineExpiredError
from ch05_protocols.google_config import (
    GoogleStreamConfig,
    parse_streaming_config,
)
from ch05_protocols.google_results import GoogleResponses
from ch05_protocols.google_status import (
    StreamError,
    audio_before_config,
    audio_chunk_too_large,
    audio_timeout,
    client_not_reading,
    deadline_passed,
    expected_audio,
    internal,
    invalid_audio,
    refused,
    results_late,
    server_shutting_down,
    stream_too_long,
    usage_limit,
)

log = logging.getLogger("ch05_protocols")

# What the reader hands the servicer: a response, the status that ends
# the call, or None for an orderly end.
Outgoing = StreamingRecognizeResponse | StreamError | None
# The call's next request message; None once the client half-closed.
ReadRequest = Callable[[], Awaitable[StreamingRecognizeRequest | None]]
# Admits the stream its config describes (chapter 4's hooks: chapter 8
# meters and limits here); raises StreamError to refuse it.
Admit = Callable[[StreamRequest], Awaitable[StreamTracker]]


@dataclass(frozen=True)
class GoogleLimits:
    max_audio_bytes: int = 25_600  # 25 KB of audio per request message
    max_stream_s: float = 305.0  # Google's "approximately 5 minutes"
    audio_timeout_s: float = 10.0  # longest gap between audio messages
    send_queue: int = 64  # responses waiting for a client that lags
    drain_timeout_s: float = 5.0  # for the last finals after half-close


@dataclass(eq=False)
class RecognizeStream:
    read_request: ReadRequest
    new_session: SessionFactory
    defaults: StreamDefaults
    limits: GoogleLimits
    request_id: int
    admit: Admit
    session: Session | None = field(default=None, init=False)
    tracker: StreamTracker | None = field(default=None, init=False)
    _reader: asyncio.Task[None] | None = field(default=None, init=False)
    _responses: GoogleResponses | None = field(default=None, init=False)
    _outgoing: asyncio.Queue[Outgoing] = field(
        default_factory=asyncio.Queue, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _over: bool = field(default=False, init=False)  # nothing more to say
    _utterance_done: bool = field(default=False, init=False)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.max_stream_s
        self._reader = self._run(self._read(deadline))

    def shutdown(self) -> None:
        """The server is stopping: stop reading, send the last finals
        and the bill, then end with UNAVAILABLE so the client retries."""
        if self._over or self._reader is None or self._reader.done():
            return
        self._reader.cancel()
        if self.session is None or self._responses is None:
            self._end(server_shutting_down())
        else:
            self._run(self._finish(server_shutting_down()))

    async def next_response(self) -> StreamingRecognizeResponse | None:
        """The next response to send; None once the call is over, or
        StreamError to end it with a status."""
        item = await self._outgoing.get()
        if isinstance(item, StreamError):
            raise item
        return item

    async def stop(self) -> None:
        self._over = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.tracker is not None:
            tracker, self.tracker = self.tracker, None
            await tracker.ended()  # once, however the call ended

    def _run(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._stopped)
        return task

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """A reader or decoder that fails ends the call with its status."""
        if task.cancelled() or task.exception() is None:
            return
        self._end(self._status_of(task.exception()))

    def _status_of(self, error: BaseException | None) -> StreamError:
        if isinstance(error, StreamError):
            return error
        if isinstance(error, DeadlineExpiredError):
            return deadline_passed(str(error))
        if isinstance(error, SlowConsumerError):
            return refused(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        if isinstance(error, DecodeUnavailableError):
            return refused(grpc.StatusCode.UNAVAILABLE, str(error))
        log.error("event=stream_failed request_id=%d", self.request_id,
                  exc_info=error)
        return internal()

    def _end(self, outcome: StreamError | None) -> None:
        if not self._over:
            self._over = True
            self._outgoing.put_nowait(outcome)

    def _send(self, response: StreamingRecognizeResponse) -> None:
        # The queue drains as fast as HTTP/2 flow control lets responses
        # out; one that fills belongs to a client that stopped reading,
        # and holding results for it without end would cost every stream.
        if self._over:
            return
        if self._outgoing.qsize() >= self.limits.send_queue:
            self._end(client_not_reading(self.limits.send_queue))
        else:
            self._outgoing.put_nowait(response)

    async def _read(self, deadline: float) -> None:
        try:
            async with asyncio.timeout_at(deadline):
                config = await self._read_config()
                await self._read_audio(config)
        except TimeoutError:
            if not self._utterance_done:
                raise stream_too_long(self.limits.max_stream_s) from None
        await self._finish()

    async def _next_request(self) -> StreamingRecognizeRequest | None:
        """The next message, or None when the client half-closed."""
        try:
            async with asyncio.timeout(self.limits.audio_timeout_s):
                return await self.read_request()
        except TimeoutError:
            if self._utterance_done:
                # Quiet after its single utterance, as it should be: a
                # client that does not half-close has done nothing wrong.
                return None
            raise audio_timeout() from None

    async def _read_config(self) -> GoogleStreamConfig:
        first = await self._next_request()
        if first is None or "streaming_config" not in first:
            raise audio_before_config()
        config = parse_streaming_config(first.streaming_config,
                                        self.defaults)
        self.tracker = await self.admit(config.request)
        self._responses = GoogleResponses(config, self.request_id)
        self.session = self.new_session(config.request, self._emit)
        self.session.device_time = device_time_of(self.tracker)
        self._run(self.session.run())
        if isinstance(self.tracker, StoppableTracker):
            self._run(self._stop_when(self.tracker))
        return config

    async def _stop_when(self, tracker: StoppableTracker) -> None:
        """Chapter 9 ends a call whose key is revoked, or whose token's
        session time is up."""
        stop = await tracker.stopped()
        if stop.expired:
            raise refused(grpc.StatusCode.OUT_OF_RANGE, stop.reason)
        raise refused(grpc.StatusCode.UNAUTHENTICATED,
                      f"credential no longer valid: {stop.reason}")

    async def _read_audio(self, config: GoogleStreamConfig) -> None:
        first = True
        while (request := await self._next_request()) is not None:
            if "audio_content" not in request:
                raise expected_audio()
            if not self._utterance_done:  # audio after it is not heard
                await self._accept(request.audio_content, config, first)
            first = False

    async def _accept(self, audio: bytes, config: GoogleStreamConfig,
                      first: bool) -> None:
        assert self.session is not None
        if len(audio) > self.limits.max_audio_bytes:
            raise audio_chunk_too_large(self.limits.max_audio_bytes)
        request = config.request
        try:
            if first:  # only a first message may start with a WAV header
                audio = strip_declared_header(audio, request.encoding,
                                              request.sample_rate)
            seconds = self.session.audio.duration_of(audio)
            # Backpressure: while too much audio waits undecoded, stop
            # reading, and HTTP/2 flow control stops the client.
            await self.session.cap.make_room(seconds)
            self.session.accept_audio(audio)
        except (AudioFormatError, FrameTooLongError) as error:
            raise invalid_audio(str(error)) from None
        assert self.tracker is not None
        if over_limit := await self.tracker.audio(seconds):
            raise usage_limit(over_limit)

    async def _finish(self, outcome: StreamError | None = None) -> None:
        """The client half-closed (or the server is stopping): the last
        finals, then the bill, then `outcome`."""
        assert self.session is not None and self._responses is not None
        if not self._utterance_done:
            self.session.finalize()
            try:
                async with asyncio.timeout(self.limits.drain_timeout_s):
                    await self.session.drained()
            except TimeoutError:
                raise results_late(self.limits.drain_timeout_s) from None
        self._send(self._responses.closing(self.session.stats))
        self._end(outcome)

    def _emit(self, event: SessionEvent) -> None:
        assert self._responses is not None
        if self._utterance_done:
            return  # Google returns nothing after a single utterance
        single = self._responses.config.single_utterance
        ends_utterance = (single and isinstance(event, TranscriptEvent)
                          and event.hypothesis.is_final)
        if ends_utterance:
            self._send(self._responses.end_of_single_utterance())
        for response in self._responses.encode(event):
            self._send(response)
        if ends_utterance:
            # Google hears one utterance, then waits for the client to
            # stop sending and half-close; ending the call at once would
            # fail the writes the client still has in flight.
            self._utterance_done = True
