"""A dialect around another: all of it passed through but what changes.

Chapter 9, "PII in transcripts" and "Securing audio data". Redaction
and retention each wrap chapter 4's dialects rather than change them:
the same paths, credentials, close codes and frames, with only the
request's parsing and the stream's messages touched. These bases pass
every part of the `Dialect` and `DialectStream` protocols to the inner
one; a wrapper overrides what it changes, and wrappers nest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ch04_streaming.dialects.dialect import (
    Answer,
    AnsweringStream,
    ClientEvent,
    Dialect,
    DialectStream,
    Inbound,
    StreamDefaults,
    StreamRequest,
)
from ch04_streaming.session import SessionEvent, SessionStats
from ch04_streaming.wire import WireMessage


class WrappedDialect:
    def __init__(self, inner: Dialect) -> None:
        self.inner = inner
        self.name, self.label = inner.name, inner.label
        self.path = inner.path
        self.codes, self.controls = inner.codes, inner.controls
        self.pacing = inner.pacing

    def credential(self, headers: Mapping[str, str],
                   query: Mapping[str, str]) -> str | None:
        return self.inner.credential(headers, query)

    def error_headers(self, reason: str) -> dict[str, str]:
        return self.inner.error_headers(reason)

    def read_frame(self, frame: str | bytes) -> Inbound:
        return self.inner.read_frame(frame)

    def parse(self, query: Mapping[str, str],
              defaults: StreamDefaults) -> StreamRequest:
        return self.inner.parse(query, defaults)

    def open_stream(self, request: StreamRequest) -> DialectStream:
        return self.inner.open_stream(request)


@dataclass
class WrappedStream:
    inner: DialectStream

    def opening(self) -> list[WireMessage]:
        return self.inner.opening()

    def on_audio(self, payload: bytes) -> None:
        self.inner.on_audio(payload)

    def encode(self, event: SessionEvent) -> list[WireMessage]:
        return self.inner.encode(event)

    def closing(self, stats: SessionStats) -> list[WireMessage]:
        return self.inner.closing(stats)

    def answer(self, event: ClientEvent) -> Answer:
        """Only a dialect whose frames are `ClientEvent`s asks."""
        if not isinstance(self.inner, AnsweringStream):
            raise TypeError(f"{type(self.inner).__name__} answers no events")
        return self.inner.answer(event)
