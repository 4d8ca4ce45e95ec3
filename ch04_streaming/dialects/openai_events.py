"""The OpenAI Realtime transcription events, typed once.

Chapter 4, "Reference architectures from production providers", for
chapter 5's OpenAI Realtime dialect. The client's events are parsed
into these models at the edge, one discriminated union on `type`; an
event that fails to parse becomes an `InvalidEvent` holding the error
OpenAI would send, so the stream answers it and goes on. The server's
events are `WireMessage`s, each with OpenAI's `event_id` and `type`;
the official `openai` SDK reads them into its own models.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from ch04_streaming.wire import WireMessage

# 192 KiB of base64 is 144 KiB of audio, 3 s of 24 kHz PCM16: a bound
# on the work one event costs before anything about it is known, under
# the server's cap on a message (256 KiB), which closes with 1009.
MAX_AUDIO_CHARS = 192 * 1024
RATE = 24_000  # the only rate OpenAI takes for audio/pcm


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def base64_pcm(value: object) -> bytes:
    """`audio`: length first, so a huge one is never decoded."""
    if not isinstance(value, str):
        raise PydanticCustomError("invalid_type", "audio must be a string")
    if len(value) > MAX_AUDIO_CHARS:
        raise PydanticCustomError(
            "too_big", "audio of {size} characters; at most {limit}",
            {"size": len(value), "limit": MAX_AUDIO_CHARS})
    try:
        audio = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise PydanticCustomError(
            "invalid_base64", "audio is not valid base64") from None
    if len(audio) % 2:
        raise PydanticCustomError(
            "invalid_audio", "audio must be whole 16-bit samples")
    return audio


class ClientModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event_id: str | None = None


class PcmFormat(BaseModel):
    type: Literal["audio/pcm", "audio/pcmu", "audio/pcma"]
    rate: int | None = None


class ServerVad(BaseModel):
    type: Literal["server_vad", "semantic_vad"]
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None


class Transcription(BaseModel):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None


class AudioInput(BaseModel):
    format: PcmFormat | None = None
    transcription: Transcription | None = None
    turn_detection: ServerVad | None = None
    noise_reduction: dict[str, object] | None = None


class AudioConfig(BaseModel):
    input: AudioInput | None = None


class SessionConfig(BaseModel):
    type: Literal["transcription", "realtime"]
    audio: AudioConfig | None = None


class SessionUpdate(ClientModel):
    type: Literal["session.update"]
    session: SessionConfig


class Append(ClientModel):
    type: Literal["input_audio_buffer.append"]
    audio: Annotated[bytes, BeforeValidator(base64_pcm)]


class Commit(ClientModel):
    type: Literal["input_audio_buffer.commit"]


class Clear(ClientModel):
    type: Literal["input_audio_buffer.clear"]


ClientEventModel = Annotated[SessionUpdate | Append | Commit | Clear,
                             Field(discriminator="type")]
CLIENT_EVENT: TypeAdapter[SessionUpdate | Append | Commit | Clear] = (
    TypeAdapter(ClientEventModel))


class RealtimeError(BaseModel):
    type: str
    code: str | None = None
    message: str
    param: str | None = None
    event_id: str | None = None  # the client event it answers


class InvalidEvent(BaseModel):
    """A text frame that is no event this server takes, and why."""

    error: RealtimeError


def invalid_request(code: str, message: str, param: str | None = None,
                    event_id: str | None = None) -> InvalidEvent:
    return InvalidEvent(error=RealtimeError(
        type="invalid_request_error", code=code, message=message,
        param=param, event_id=event_id))


# --8<-- [start:realtime_parse]
def read_event(text: str
               ) -> SessionUpdate | Append | Commit | Clear | InvalidEvent:
    """One text frame -> a client event, or the error OpenAI sends."""
    try:
        return CLIENT_EVENT.validate_json(text)
    except ValidationError as error:
        first = error.errors()[0]
        # The location begins with the event's type: OpenAI's does not.
        where = ".".join(str(part) for part in first["loc"][1:])
        if first["type"] == "union_tag_invalid":
            return invalid_request(
                "invalid_value", f"Invalid value: {first['input']!r}."
                " Supported values are: 'session.update',"
                " 'input_audio_buffer.append', 'input_audio_buffer.commit'"
                " and 'input_audio_buffer.clear'.", "type")
        if first["type"] == "union_tag_not_found":
            return invalid_request(
                "missing_required_parameter",
                "Missing required parameter: 'type'.", "type")
        if first["type"] in ("json_invalid", "dict_type", "model_type"):
            return invalid_request(
                "invalid_json", "The event is not a JSON object.")
        return invalid_request(first["type"], first["msg"], where or None)
# --8<-- [end:realtime_parse]


class ServerEvent(WireMessage):
    event_id: str = Field(default_factory=lambda: new_id("event"))


class TurnDetection(BaseModel):
    type: Literal["server_vad"] = "server_vad"
    threshold: float | None = None
    prefix_padding_ms: int
    silence_duration_ms: int


class SessionInput(BaseModel):
    format: PcmFormat
    transcription: Transcription
    turn_detection: TurnDetection
    noise_reduction: None = None


class SessionAudio(BaseModel):
    input: SessionInput


class TranscriptionSession(BaseModel):
    type: Literal["transcription"] = "transcription"
    id: str
    object: Literal["realtime.transcription_session"] = (
        "realtime.transcription_session")
    expires_at: int
    audio: SessionAudio


class SessionCreated(ServerEvent):
    type: Literal["session.created"] = "session.created"
    session: TranscriptionSession


class SessionUpdated(ServerEvent):
    type: Literal["session.updated"] = "session.updated"
    session: TranscriptionSession


class SpeechStarted(ServerEvent):
    type: Literal["input_audio_buffer.speech_started"] = (
        "input_audio_buffer.speech_started")
    audio_start_ms: int
    item_id: str


class SpeechStopped(ServerEvent):
    type: Literal["input_audio_buffer.speech_stopped"] = (
        "input_audio_buffer.speech_stopped")
    audio_end_ms: int
    item_id: str


class Committed(ServerEvent):
    type: Literal["input_audio_buffer.committed"] = (
        "input_audio_buffer.committed")
    item_id: str
    previous_item_id: str | None = None


class Cleared(ServerEvent):
    type: Literal["input_audio_buffer.cleared"] = (
        "input_audio_buffer.cleared")


class TranscriptionDelta(ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.delta"] = (
        "conversation.item.input_audio_transcription.delta")
    item_id: str
    content_index: int = 0
    delta: str


class DurationUsage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class TranscriptionCompleted(ServerEvent):
    type: Literal[
        "conversation.item.input_audio_transcription.completed"] = (
        "conversation.item.input_audio_transcription.completed")
    item_id: str
    content_index: int = 0
    transcript: str
    usage: DurationUsage


class ErrorEvent(ServerEvent):
    type: Literal["error"] = "error"
    error: RealtimeError

    def to_json(self) -> str:
        return self.model_dump_json()  # OpenAI's errors say null
