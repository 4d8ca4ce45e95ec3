"""The transport's own messages on a WebTransport results stream.

Chapter 5, "WebTransport: QUIC datagrams". Results are the dialect's
JSON messages, one per line; the transport adds two of its own, typed
here. An `error` event, in OpenAI's realtime shape, says why a
datagram or a line was refused while the session goes on; the
`webtransport.closed` message, the stream's last, gives the close code
and reason and what became of the audio: frames heard, seconds
concealed, frames late, duplicated, or dropped for want of room.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from ch04_streaming.wire import WireMessage


def event_id() -> str:
    return f"event_{uuid.uuid4().hex[:20]}"


class ErrorDetail(BaseModel):
    type: str = "invalid_request_error"
    code: str
    message: str
    param: str | None = None


class ErrorEvent(WireMessage):
    type: Literal["error"] = "error"
    event_id: str = Field(default_factory=event_id)
    error: ErrorDetail

    def to_json(self) -> str:
        return self.model_dump_json()  # `param: null` stays, as OpenAI's


def error_event(code: str, message: str) -> ErrorEvent:
    return ErrorEvent(error=ErrorDetail(code=code, message=message))


class AudioReport(BaseModel):
    mode: Literal["datagram", "stream"]
    frames: int  # frames heard
    concealed_s: float  # audio lost: silence in its place
    late_frames: int
    duplicate_frames: int
    dropped_frames: int  # no room to wait for decoding
    errors: int  # frames and lines refused


class TransportClosed(WireMessage):
    type: Literal["webtransport.closed"] = "webtransport.closed"
    code: int
    reason: str
    audio: AudioReport
