"""A stream's requests, parsed at the edge: config first, then audio.

Chapter 5, "gRPC bidirectional streaming". Requests arrive as bytes and
are parsed here, once: bytes that are not a request, a first message
that is not the config, a second config, or audio over the per-message
limit each end the call with INVALID_ARGUMENT and a reason. Reading
also enforces time: audio must keep arriving (the audio timeout) and a
stream has a longest duration, both OUT_OF_RANGE, as Google's API has.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import DecodeError

from ch05_protocols.speech.v1.speech_pb2 import (
    StreamingConfig,
    StreamingRecognizeRequest,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT


class CallEndedError(Exception):
    """How a call ends, when it does not end with OK.

    `orderly`: the audio received so far gets its finals before the
    status, as when a limit of time is reached; a client's mistake
    ends the call at once.
    """

    def __init__(self, code: grpc.StatusCode, details: str,
                 orderly: bool = False) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.orderly = orderly


def parse_request(raw: bytes) -> StreamingRecognizeRequest:
    try:
        return StreamingRecognizeRequest.FromString(raw)
    except DecodeError:
        raise CallEndedError(
            INVALID, f"a message of {len(raw)} bytes is not a"
            " speech.v1.StreamingRecognizeRequest") from None


@dataclass
class RequestReader:
    """The next request, within the audio timeout and the stream's end."""

    raw: AsyncIterable[bytes]
    audio_timeout_s: float
    max_stream_s: float
    ends_at: float = field(init=False)  # loop time: the stream's end
    _messages: AsyncIterator[bytes] = field(init=False)

    def __post_init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.ends_at = loop.time() + self.max_stream_s
        self._messages = aiter(self.raw)

    async def next(self) -> StreamingRecognizeRequest | None:
        """A parsed request; None when the client has finished sending."""
        left_s = self.ends_at - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(
                    max(0.0, min(self.audio_timeout_s, left_s))):
                raw = await anext(self._messages, None)
        except TimeoutError:
            raise self._late(left_s <= self.audio_timeout_s) from None
        return None if raw is None else parse_request(raw)

    def _late(self, stream_over: bool) -> CallEndedError:
        if stream_over:
            return CallEndedError(
                grpc.StatusCode.OUT_OF_RANGE,
                "Exceeded maximum allowed stream duration of"
                f" {self.max_stream_s:g} seconds", orderly=True)
        return CallEndedError(
            grpc.StatusCode.OUT_OF_RANGE,
            f"Audio Timeout Error: no audio for {self.audio_timeout_s:g} s;"
            " send audio close to real time", orderly=True)


# --8<-- [start:config_first]
async def read_config(requests: RequestReader) -> StreamingConfig:
    """The first request must be the stream's config."""
    first = await requests.next()
    if first is None:
        raise CallEndedError(INVALID, "the stream ended before its"
                             " streaming_config")
    if first.WhichOneof("streaming_request") != "streaming_config":
        raise CallEndedError(INVALID, "the first request must hold"
                             " streaming_config; audio_content follows it")
    return first.streaming_config


def audio_of(request: StreamingRecognizeRequest, max_bytes: int) -> bytes:
    """Every later request must be audio, and no more than the limit."""
    kind = request.WhichOneof("streaming_request")
    if kind == "streaming_config":
        raise CallEndedError(INVALID, "streaming_config may be sent once,"
                             " in the first request only")
    if kind is None:
        raise CallEndedError(INVALID, "a request holds neither"
                             " streaming_config nor audio_content")
    if len(request.audio_content) > max_bytes:
        raise CallEndedError(
            INVALID, f"audio_content of {len(request.audio_content)}"
            f" bytes; at most {max_bytes} per request: send 100 ms"
            " chunks")
    return request.audio_content
# --8<-- [end:config_first]
