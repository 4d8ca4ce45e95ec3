"""Two framings of one WebSocket protocol: binary audio and base64 JSON.

Chapter 5, "WebSocket for audio: binary framing, persistent connections,
backpressure". The same messages and the same session core, served at
two paths that differ only in how audio travels: at `/ws/binary` a
binary frame is the audio as sent, at `/ws/base64` every frame is JSON
text and audio is `{"type": "audio", "data": "<base64>"}`, the naive
design that costs a third more bytes and a decode per frame. Controls
are typed JSON on both (`finalize`, `keep_alive`, `close`). Untrusted
frames are parsed once, here, into typed messages; a frame that cannot
be read closes the stream with a code that says why: 1003 for a binary
frame on the base64 path, 1007 for data that is not base64 or not the
declared audio, 1008 for an unknown message, 1009 for a data field
longer than `MAX_DATA_CHARS`. `?backpressure=drop` opts a stream into
dropping stale audio instead of buffering it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from ch04_streaming.audio import Encoding
from ch04_streaming.auth import authorization_key
from ch04_streaming.backpressure import Backpressure
from ch04_streaming.dialects.dialect import (
    CloseCodes,
    Closing,
    Control,
    Inbound,
    RequestError,
    StreamDefaults,
    StreamRequest,
    parse_bool,
    parse_rate,
)
from ch04_streaming.pacing import PacingRules
from ch04_streaming.session import (
    SessionEvent,
    SessionStats,
    StreamOptions,
    TranscriptEvent,
)
from ch04_streaming.wire import WireMessage

ENCODINGS = {"linear16": Encoding.LINEAR16, "mulaw": Encoding.MULAW}
# 128 Ki characters of base64 are 96 KiB of audio, 3 s of 16 kHz PCM:
# far more than a chunk needs, and a bound on the work one frame costs
# before anything about it is known.
MAX_DATA_CHARS = 128 * 1024
CONTROLS = {"finalize": Control.FINALIZE, "keep_alive": Control.KEEP_ALIVE,
            "close": Control.CLOSE}


# RFC 6455's own codes for a frame of a type the endpoint does not
# take, and for a message too big to process.
UNSUPPORTED_DATA = Closing(1003, "unsupported data")
TOO_BIG = Closing(1009, "message too big")
ANY_PACE = PacingRules()


@dataclass(frozen=True)
class JsonCloseCodes(CloseCodes):
    """Chapter 4's codes, and two that only a text framing needs."""

    binary_frame: Closing = UNSUPPORTED_DATA
    too_big: Closing = TOO_BIG


CODES = JsonCloseCodes(
    bad_audio=Closing(1007, "invalid audio"),
    bad_control=Closing(1008, "invalid message"),
    idle=Closing(1000, "idle timeout"),
    slow_consumer=Closing(1008, "slow consumer"),
    pacing=Closing(1008, "pacing"),  # never used: no pacing rules
    expired=Closing(1000, "maximum session duration"),
)


def base64_audio(value: object) -> bytes:
    """The `data` field: length first, so a huge one is never decoded."""
    if not isinstance(value, str):
        raise PydanticCustomError("base64", "data must be a base64 string")
    if len(value) > MAX_DATA_CHARS:
        raise PydanticCustomError(
            "too_big", "data of {size} characters; at most {limit}",
            {"size": len(value), "limit": MAX_DATA_CHARS})
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise PydanticCustomError(
            "base64", "data is not valid base64") from None


class AudioMessage(BaseModel):
    type: Literal["audio"]
    data: Annotated[bytes, BeforeValidator(base64_audio)]


class ControlMessage(BaseModel):
    type: Literal["finalize", "keep_alive", "close"]


ClientMessage = Annotated[AudioMessage | ControlMessage,
                          Field(discriminator="type")]
CLIENT_MESSAGE: TypeAdapter[AudioMessage | ControlMessage] = TypeAdapter(
    ClientMessage)
CONTROL_MESSAGE = TypeAdapter(ControlMessage)
EXPECTED = ('expected JSON {"type": "audio", "data": BASE64} or a control:'
            ' finalize, keep_alive, close')


def refusal(error: ValidationError) -> Closing:
    """The close code and reason for a frame that failed to parse."""
    first = error.errors(include_url=False)[0]
    if first["type"] == "too_big":
        return CODES.too_big.because(first["msg"])
    if first["type"] == "base64":
        return CODES.bad_audio.because(first["msg"])
    return CODES.bad_control.because(EXPECTED)


def read_control(text: str) -> Inbound:
    try:
        return CONTROLS[CONTROL_MESSAGE.validate_json(text).type]
    except ValidationError:
        return CODES.bad_control.because(
            "expected a JSON control: finalize, keep_alive, close")


# --8<-- [start:binary_vs_base64]
def read_binary(frame: str | bytes) -> Inbound:
    """Binary framing: a binary frame's bytes are the audio as sent."""
    if isinstance(frame, bytes):
        return frame  # no parse, no decode, no copy
    return read_control(frame)


def read_base64(frame: str | bytes) -> Inbound:
    """Base64 framing: every frame is JSON text, audio included."""
    if isinstance(frame, bytes):
        return CODES.binary_frame.because(
            'send audio as text: {"type": "audio", "data": BASE64}')
    try:
        # Parsed once, at the edge: the JSON, then 4 characters of
        # base64 back into 3 bytes of audio, for every chunk.
        message = CLIENT_MESSAGE.validate_json(frame)
    except ValidationError as error:
        return refusal(error)
    if isinstance(message, AudioMessage):
        return message.data
    return CONTROLS[message.type]
# --8<-- [end:binary_vs_base64]


class WordOut(BaseModel):
    word: str
    start: float
    end: float
    confidence: float


class Transcript(WireMessage):
    type: Literal["transcript"] = "transcript"
    text: str
    is_final: bool
    start: float  # the utterance's start, stream time
    end: float  # the end of the audio this result covers
    words: list[WordOut]


class Closed(WireMessage):
    """The last message of a stream: what was heard, what was dropped."""

    type: Literal["closed"] = "closed"
    audio_s: float
    dropped_audio_s: float


@dataclass
class JsonStream:
    def opening(self) -> list[WireMessage]:
        return []

    def on_audio(self, payload: bytes) -> None:
        pass

    def encode(self, event: SessionEvent) -> list[WireMessage]:
        if not isinstance(event, TranscriptEvent):
            return []
        words = event.hypothesis.words
        return [Transcript(
            text=event.hypothesis.transcript,
            is_final=event.hypothesis.is_final,
            start=event.start_s, end=event.end_s,
            words=[WordOut(word=w.text, start=w.start, end=w.end,
                           confidence=w.confidence) for w in words])]

    def closing(self, stats: SessionStats) -> list[WireMessage]:
        return [Closed(audio_s=round(stats.received_s, 3),
                       dropped_audio_s=round(stats.dropped_s, 3))]


@dataclass
class JsonSocket:
    """One framing of the chapter's protocol, at its own path."""

    name: str
    label: str
    path: str
    read: Callable[[str | bytes], Inbound]
    codes: CloseCodes = CODES
    controls: Mapping[str, Control] = field(
        default_factory=lambda: dict(CONTROLS))
    pacing: PacingRules = ANY_PACE  # any pace, any frame size

    def credential(self, headers: Mapping[str, str],
                   query: Mapping[str, str]) -> str | None:
        """`Authorization: Token KEY`, or `?token=KEY` from a browser."""
        header = authorization_key(headers.get("Authorization", ""))
        return header or query.get("token")

    def error_headers(self, reason: str) -> dict[str, str]:
        return {}  # the JSON body says it all

    def parse(self, query: Mapping[str, str],
              defaults: StreamDefaults) -> StreamRequest:
        name = query.get("encoding", "linear16")
        if name not in ENCODINGS:
            raise RequestError(
                f"encoding {name!r} is not supported; use linear16 or mulaw")
        policy = query.get("backpressure", Backpressure.BUFFER.value)
        if policy not in set(Backpressure):
            raise RequestError("backpressure must be buffer or drop")
        return StreamRequest(
            encoding=ENCODINGS[name],
            sample_rate=parse_rate(query, 16_000),
            options=StreamOptions(
                interim_results=parse_bool(query, "interim_results", True)),
            vad=defaults.vad,
            idle_timeout_s=defaults.idle_timeout_s,
            backpressure=Backpressure(policy),
        )

    def read_frame(self, frame: str | bytes) -> Inbound:
        return self.read(frame)

    def open_stream(self, request: StreamRequest) -> JsonStream:
        return JsonStream()


BINARY = JsonSocket("ws-binary", "Binary WebSocket", "/ws/binary",
                    read_binary)
BASE64 = JsonSocket("ws-base64", "Base64 JSON WebSocket", "/ws/base64",
                    read_base64)


def chapter5_dialects() -> dict[str, JsonSocket]:
    """Both framings, by path, to serve beside chapter 4's dialects."""
    return {d.path: d for d in (BINARY, BASE64)}
