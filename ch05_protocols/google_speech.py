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
message of the stream is read.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import grpc
from google.cloud.speech_v1.types import (
    StreamingRecognizeRequest,
    StreamingRecognizeResponse,
)

from ch04_streaming.auth import ApiKeys
from ch04_streaming.dialects.dialect import StreamDefaults
from ch04_streaming.engine import Recognizer
from ch04_streaming.stream_handler import SessionFactory
from ch05_protocols.google_status import (
    StreamError,
    invalid_api_key,
    invalid_credential,
    missing_credential,
    not_ready,
)
from ch05_protocols.google_stream import (
    GoogleLimits,
    ReadRequest,
    RecognizeStream,
)

log = logging.getLogger("ch05_protocols")

SERVICE = "google.cloud.speech.v1.Speech"
Context = grpc.aio.ServicerContext[StreamingRecognizeRequest,
                                   StreamingRecognizeResponse]


def check_credentials(metadata: Iterable[tuple[str, str | bytes]],
                      keys: ApiKeys) -> None:
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


@dataclass
class GoogleSpeech:
    """The `Speech` service's streaming method, over shared parts."""

    new_session: SessionFactory
    recognizer: Recognizer  # asked only whether it is ready
    keys: ApiKeys
    limits: GoogleLimits = field(default_factory=GoogleLimits)
    defaults: StreamDefaults = field(default_factory=StreamDefaults)
    # Calls in flight, for whoever serves this (draining, metrics).
    active: set[RecognizeStream] = field(default_factory=set)

    async def streaming_recognize(
        self, requests: AsyncIterator[StreamingRecognizeRequest],
        context: Context,
    ) -> AsyncIterator[StreamingRecognizeResponse]:
        request_id = secrets.randbits(63)  # an int64, as Google's
        stream = RecognizeStream(request_reader(context), self.new_session,
                                 self.defaults, self.limits, request_id)
        try:
            check_credentials(context.invocation_metadata() or (),
                              self.keys)
            if not self.recognizer.ready:
                raise not_ready()
            self.active.add(stream)
            stream.start()
            while (response := await stream.next_response()) is not None:
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
            self.active.discard(stream)


def add_google_speech(server: grpc.aio.Server, new_session: SessionFactory,
                      recognizer: Recognizer, keys: ApiKeys,
                      limits: GoogleLimits | None = None,
                      defaults: StreamDefaults | None = None
                      ) -> GoogleSpeech:
    """Serve Google's `StreamingRecognize` on `server`; the composition
    root passes the parts every protocol of the chapter shares."""
    speech = GoogleSpeech(new_session, recognizer, keys,
                          limits or GoogleLimits(),
                          defaults or StreamDefaults())
    method = grpc.stream_stream_rpc_method_handler(
        speech.streaming_recognize,
        request_deserializer=StreamingRecognizeRequest.deserialize,
        response_serializer=StreamingRecognizeResponse.serialize,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        SERVICE, {"StreamingRecognize": method}),))
    return speech
