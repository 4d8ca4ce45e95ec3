"""The `speech.v1.Speech` service: admission, then one call per stream.

Chapter 5, "gRPC bidirectional streaming". A call is admitted before
any request is read: a deadline already passed, a server that is
loading or draining, or one at its stream cap (the server's
`StreamGate`, which Google's API shares) each end it with their status
and a retry hint. Then its config is read and parsed, chapter
4's hooks admit it (chapter 8 meters and limits here), and a
`RecognitionCall` serves it on chapter 4's session core. Requests come
as bytes and are parsed in `requests.py`, so a malformed message is
INVALID_ARGUMENT with a reason rather than gRPC's UNKNOWN.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from ch04_streaming.app import session_factory
from ch04_streaming.dialects.dialect import StreamDefaults
from ch04_streaming.engine import Recognizer
from ch04_streaming.scheduler import DecodeScheduler
from ch04_streaming.session import EveryChunk, InterimCadence
from ch04_streaming.stream_handler import ConnectionLimits
from ch04_streaming.stream_hooks import (
    NoHooks,
    Refusal,
    StreamHooks,
    StreamStart,
)
from ch05_protocols.deadline import DeadlineScheduler
from ch05_protocols.interceptors import call_key
from ch05_protocols.recognition_call import CallLimits, RecognitionCall
from ch05_protocols.recognition_config import (
    ConfigError,
    describe,
    parse_streaming_config,
)
from ch05_protocols.requests import CallEndedError, RequestReader, read_config
from ch05_protocols.speech.v1 import speech_pb2
from ch05_protocols.speech.v1.speech_pb2 import StreamingRecognizeResponse
from ch05_protocols.stream_gate import StreamGate, refusal_code, text_metadata

log = logging.getLogger("ch05_protocols")

SERVICE_NAME = speech_pb2.DESCRIPTOR.services_by_name["Speech"].full_name
Context = grpc.aio.ServicerContext[bytes, StreamingRecognizeResponse]


@dataclass(frozen=True)
class ServiceLimits:
    max_streams: int = 100
    max_stream_s: float = 300.0
    audio_timeout_s: float = 10.0
    call: CallLimits = field(default_factory=CallLimits)
    connection: ConnectionLimits = field(default_factory=ConnectionLimits)


@dataclass(eq=False)
class SpeechService:
    gate: StreamGate  # the server's admission, shared with Google's API
    scheduler: DecodeScheduler  # shared by every stream
    defaults: StreamDefaults
    limits: ServiceLimits
    hooks: StreamHooks = field(default_factory=NoHooks)
    cadence: InterimCadence = field(default_factory=EveryChunk)

    @property
    def recognizer(self) -> Recognizer:
        return self.gate.recognizer

    async def StreamingRecognize(  # noqa: N802 - the proto's name
        self, requests: AsyncIterable[bytes], context: Context,
    ) -> AsyncIterator[StreamingRecognizeResponse]:
        if refused := self.gate.refusal(context.time_remaining()):
            await context.abort(refused.code, refused.details)
        ending: CallEndedError | None = None
        with self.gate.holding() as slot:
            try:
                call = await self._open(requests, context)
                slot.on_stop(call.shutdown)
                async for response in self._serve(call):
                    yield response
                ending = call.queue.ending
            except CallEndedError as error:
                ending = error
        if ending is not None:
            await context.abort(ending.code, ending.details)

    async def _serve(self, call: RecognitionCall
                     ) -> AsyncIterator[StreamingRecognizeResponse]:
        try:
            async for response in call.responses():
                yield response
        finally:
            await call.tracker.ended()  # however the call ended
            queue = call.queue
            code = (("OK" if queue.ending is None else queue.ending.code.name)
                    if queue.ended else "CANCELLED")
            log.info("event=stream_ended stream=%s code=%s", call.stream_id,
                     code)

    async def _open(self, raw: AsyncIterable[bytes],
                    context: Context) -> RecognitionCall:
        """Read and parse the config; let the hooks admit the stream."""
        requests = RequestReader(raw, self.limits.audio_timeout_s,
                                 self.limits.max_stream_s)
        config = await read_config(requests)
        try:
            request = parse_streaming_config(config, self.defaults)
        except ConfigError as error:
            raise CallEndedError(grpc.StatusCode.INVALID_ARGUMENT,
                                 str(error)) from None
        stream_id = uuid.uuid4().hex
        metadata = context.invocation_metadata() or ()
        key = call_key(metadata) or ""
        start = StreamStart(stream_id, key, describe(request),
                            text_metadata(metadata))
        tracker = await self.hooks.admit(start)
        if isinstance(tracker, Refusal):
            raise CallEndedError(refusal_code(tracker.status),
                                 tracker.reason)
        if start.reply_headers:
            await context.send_initial_metadata(
                tuple(start.reply_headers.items()))
        # Each call decodes under its own deadline; the engine is shared.
        scheduler = DeadlineScheduler(self.scheduler,
                                      context.time_remaining)
        log.info("event=stream_started stream=%s encoding=%s rate=%d",
                 stream_id, request.encoding, request.sample_rate)
        return RecognitionCall(
            requests, request,
            session_factory(scheduler, self.limits.connection,
                            self.cadence),
            self.limits.call, tracker, stream_id)


def add_speech_service(service: SpeechService, server: Any) -> None:
    """Mount the service on a grpc.aio server; requests stay bytes, so
    that the service, not gRPC, says what is wrong with a bad one."""
    handler = grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "StreamingRecognize": grpc.stream_stream_rpc_method_handler(
            service.StreamingRecognize,
            response_serializer=StreamingRecognizeResponse.SerializeToString,
        ),
    })
    server.add_generic_rpc_handlers((handler,))
