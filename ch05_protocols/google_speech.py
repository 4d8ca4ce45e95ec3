"""Google Cloud Speech v1's own API, served by chapter 4's session core.

Chapter 5, "gRPC bidirectional streaming: protobuf for audio chunks,
deadline propagation, Google's approach". `add_google_speech` mounts
`google.cloud.speech.v1.Speech/StreamingRecognize` on a grpc.aio server,
with the request and response types the `google-cloud-speech` library
ships, so the official client streams to it unchanged. The library ships
no servicer base, only the messages: the method is registered by name
with their (de)serialisers. Credentials arrive as gRPC metadata, as
Google's do: an OAuth-style `authorization: Bearer KEY`, or an API key
in `x-goog-api-key`, checked against `SPEECH_API_KEYS` before any
message of the stream is read. From there a stream lives as one of ours
does: the server's `StreamGate` counts it and drains it, chapter 4's
hooks admit, meter and limit it, and its decodes honour the deadline.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

import grpc
from google.cloud.speech_v1.types import (
    StreamingRecognizeRequest,
    StreamingRecognizeResponse,
)

from ch04_streaming.auth import KeyCheck
from ch04_streaming.dialects.dialect import StreamDefaults, StreamRequest
from ch04_streaming.stream_handler import SessionFactory
from ch04_streaming.stream_hooks import (
    NoHooks,
    Refusal,
    StreamHooks,
    StreamStart,
    StreamTracker,
)
from ch05_protocols.google_status import (
    StreamError,
    invalid_api_key,
    invalid_credential,
    missing_credential,
    not_ready,
    refused,
)
from ch05_protocols.google_stream import (
    GoogleLimits,
    ReadRequest,
    RecognizeStream,
)
from ch05_protocols.interceptors import call_key
from ch05_protocols.recognition_config import describe
from ch05_protocols.stream_gate import (
    StreamGate,
    refusal_code,
    text_metadata,
)

log = logging.getLogger("ch05_protocols")

SERVICE = "google.cloud.speech.v1.Speech"
Context = grpc.aio.ServicerContext[StreamingRecognizeRequest,
                                   StreamingRecognizeResponse]


def check_credentials(metadata: Iterable[tuple[str, str | bytes]],
                      keys: KeyCheck) -> None:
    """Google's two ways of saying who calls: an API key, or a bearer
    token (the client libraries send OAuth access tokens this way)."""
    sent: dict[str, list[str]] = {}
    for name, value in metadata:
        if isinstance(value, str):
            sent.setdefault(name.lower(), []).append(value)
    if api_keys := sent.get("x-goog-api-key"):
        if len(api_keys) != 1 or not keys.verify(api_keys[0]):
            raise invalid_api_key()
        return
    authorizations = sent.get("authorization")
    if not authorizations:
        raise missing_credential()
    scheme, _, token = authorizations[0].partition(" ")
    if (len(authorizations) != 1 or scheme.lower() != "bearer"
            or not keys.verify(token.strip())):
        raise invalid_credential()


def request_reader(context: Context) -> ReadRequest:
    """The call's requests, one `context.read` at a time. Not the
    handler's `requests` iterator: a read that a timeout cancels would
    leave that generator half-run, for the garbage collector to trip on.
    """

    async def read() -> StreamingRecognizeRequest | None:
        request = await context.read()
        return None if request is grpc.aio.EOF else request

    return read


# A session factory whose decodes honour the call's deadline, given
# the call's `time_remaining` (chapter 5's `DeadlineScheduler`).
DeadlineSessions = Callable[[Callable[[], float | None]], SessionFactory]


@dataclass
class GoogleSpeech:
    """The `Speech` service's streaming method, over shared parts."""

    sessions: DeadlineSessions
    gate: StreamGate  # the server's admission, shared with our API
    keys: KeyCheck
    hooks: StreamHooks = field(default_factory=NoHooks)
    limits: GoogleLimits = field(default_factory=GoogleLimits)
    defaults: StreamDefaults = field(default_factory=StreamDefaults)

    async def streaming_recognize(
        self, requests: AsyncIterator[StreamingRecognizeRequest],
        context: Context,
    ) -> AsyncIterator[StreamingRecognizeResponse]:
        request_id = secrets.randbits(63)  # an int64, as Google's
        stream = RecognizeStream(
            request_reader(context), self.sessions(context.time_remaining),
            self.defaults, self.limits, request_id,
            partial(self._admit, context))
        try:
            self._check(context)
            with self.gate.holding() as slot:
                slot.on_stop(stream.shutdown)
                stream.start()
                while (response := await stream.next_response()
                       ) is not None:
                    yield response
            log.info("event=stream_ended request_id=%d status=OK",
                     request_id)
        except StreamError as error:
            log.info("event=stream_ended request_id=%d status=%s"
                     " reason=%r", request_id, error.code.name,
                     error.message)
            await context.abort(error.code, error.message)
        finally:
            await stream.stop()

    def _check(self, context: Context) -> None:
        """Who calls, then whether the server takes a stream now."""
        check_credentials(context.invocation_metadata() or (), self.keys)
        if not self.gate.recognizer.ready:
            raise not_ready()  # in Google's words
        if refusal := self.gate.refusal(context.time_remaining()):
            raise refused(refusal.code, refusal.details)

    async def _admit(self, context: Context,
                     request: StreamRequest) -> StreamTracker:
        """Chapter 4's hooks admit the stream its config describes."""
        metadata = context.invocation_metadata() or ()
        start = StreamStart(uuid.uuid4().hex, call_key(metadata) or "",
                            describe(request), text_metadata(metadata))
        tracker = await self.hooks.admit(start)
        if isinstance(tracker, Refusal):
            raise refused(refusal_code(tracker.status), tracker.reason)
        if start.reply_headers:
            await context.send_initial_metadata(
                tuple(start.reply_headers.items()))
        return tracker


def add_google_speech(server: grpc.aio.Server,
                      speech: GoogleSpeech) -> None:
    """Serve Google's `StreamingRecognize` on `server`; the composition
    root builds `speech` from the parts every protocol shares."""
    method = grpc.stream_stream_rpc_method_handler(
        speech.streaming_recognize,
        request_deserializer=StreamingRecognizeRequest.deserialize,
        response_serializer=StreamingRecognizeResponse.serialize,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        SERVICE, {"StreamingRecognize": method}),))
