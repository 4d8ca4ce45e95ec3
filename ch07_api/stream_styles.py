"""Three ways to stream one transcription: the same segments, framed as
OpenAI's transcription events, Responses-API events, or Chat chunks.

Chapter 7, "Streaming response design". OpenAI's audio API streams
`transcript.text.delta` and `transcript.text.done`. Its Responses API
types every event and numbers it (`sequence_number`), so a client can
tell a gap from a quiet stream, and ends on a typed `response.completed`.
Chat Completions streams untyped `chat.completion.chunk` objects and
ends with the sentinel `data: [DONE]`. Same workload, three contracts;
each style turns segments into frames, and a failure into the error
object its clients raise on.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ch07_api import openai_schemas
from ch07_api.errors import ApiError, mapping_of, openai_body
from ch07_api.transcriber import Segment, Transcript


class StreamFormat(StrEnum):
    TRANSCRIPT = "transcript"  # OpenAI's audio transcription events
    RESPONSES = "responses"  # typed, numbered, Responses-API style
    CHAT = "chat"  # chat.completion.chunk lines, then [DONE]


def frame(data: dict[str, Any] | str, event: str | None = None) -> str:
    """One SSE frame; JSON on the `data:` line, as SDKs require."""
    text = data if isinstance(data, str) else json.dumps(
        data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n"


class StreamStyle(Protocol):
    def opening(self) -> list[str]: ...

    def segment(self, segment: Segment) -> str: ...

    def closing(self, transcript: Transcript) -> str: ...

    def failure(self, error: ApiError) -> str: ...


def delta_text(segment: Segment) -> str:
    """A segment as appended text: later segments start with a space."""
    return segment.text if segment.id == 0 else " " + segment.text


def usage_of(transcript: Transcript) -> dict[str, Any]:
    return openai_schemas.usage_of(transcript).model_dump()


@dataclass
class TranscriptStyle:
    """`POST /v1/audio/transcriptions` with `stream=true`, as OpenAI."""

    def opening(self) -> list[str]:
        return []

    def segment(self, segment: Segment) -> str:
        return frame({"type": "transcript.text.delta",
                      "delta": delta_text(segment),
                      "segment_id": f"seg_{segment.id}"})

    def closing(self, transcript: Transcript) -> str:
        return frame({"type": "transcript.text.done",
                      "text": transcript.text,
                      "usage": usage_of(transcript)})

    def failure(self, error: ApiError) -> str:
        return frame(openai_body(error))


# --8<-- [start:responses_events]
@dataclass
class ResponsesStyle:
    """Typed events, numbered from 0: a client can see a gap."""

    model: str
    id: str = field(default_factory=lambda: f"resp_{uuid.uuid4().hex}")
    item_id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex}")
    created_at: int = field(default_factory=lambda: int(time.time()))
    sequence: int = 0

    def _event(self, kind: str, **fields: Any) -> str:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return frame(event, event=kind)

    def _response(self, status: str, **fields: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "response", "status": status,
                "created_at": self.created_at, "model": self.model,
                **fields}

    def opening(self) -> list[str]:
        return [self._event("response.created",
                            response=self._response("in_progress"))]

    def segment(self, segment: Segment) -> str:
        return self._event("response.output_text.delta",
                           item_id=self.item_id, output_index=0,
                           content_index=0, delta=delta_text(segment))

    def closing(self, transcript: Transcript) -> str:
        return self._event("response.completed", response=self._response(
            "completed", output_text=transcript.text,
            usage=usage_of(transcript)))

    def failure(self, error: ApiError) -> str:
        return self._event("error", code=mapping_of(error).code,
                           message=error.message, param=error.param)
# --8<-- [end:responses_events]


@dataclass
class ChatStyle:
    """Untyped chunks, and a sentinel that is not JSON at the end."""

    model: str
    id: str = field(
        default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def _chunk(self, delta: dict[str, Any],
               finish_reason: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk",
                "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta,
                             "finish_reason": finish_reason}]}

    def opening(self) -> list[str]:
        return [frame(self._chunk({"role": "assistant", "content": ""}))]

    def segment(self, segment: Segment) -> str:
        return frame(self._chunk({"content": delta_text(segment)}))

    def closing(self, transcript: Transcript) -> str:
        return frame(self._chunk({}, "stop")) + frame("[DONE]")

    def failure(self, error: ApiError) -> str:
        return frame(openai_body(error))


def style_for(stream_format: StreamFormat, model: str) -> StreamStyle:
    if stream_format is StreamFormat.RESPONSES:
        return ResponsesStyle(model)
    if stream_format is StreamFormat.CHAT:
        return ChatStyle(model)
    return TranscriptStyle()
