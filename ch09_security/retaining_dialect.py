"""Zero retention by default; a stream's audio kept only when it asks.

Chapter 9, "Securing audio data" and "PII in transcripts: provider
approaches (Deepgram zero-retention)". `RetainingDialect` wraps any
chapter 4 dialect without changing it. A stream that does not ask is
served by the inner dialect's own stream: nothing of it is buffered,
so nothing can reach a disk. A stream whose query says `retain=true`
(this service's own parameter: neither Deepgram nor AssemblyAI has one;
Deepgram keeps requests by default unless `mip_opt_out=true`) gets a
`RetainingStream` in front of the inner one: it keeps the audio as
sent (up to the object cap; beyond it the recording is marked
truncated) and the final transcripts, and when the stream ends in
order hands them to the `RecordingKeeper`, which seals them for the
stream's owner. A stream closed with an error (the client vanished, an
idle timeout, a revoked key) keeps nothing, and so does a stream served
with no `StreamGuard` in front (an error is logged): only a known
owner's key can seal it.

The owner comes from the connection's context, where the `StreamGuard`
left it (`stream_owner.py`); the opt-in is read in `parse`, like every
query parameter, and kept in the same per-connection context until the
stream opens, so the request passes through unchanged and this wrapper
composes with other wrappers (redaction) in either order. Wrapped
inside a redacting dialect, it is handed redacted events, and keeps the
transcripts the client was sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from ch04_streaming.dialects.dialect import (
    Dialect,
    DialectStream,
    StreamDefaults,
    StreamRequest,
    parse_bool,
)
from ch04_streaming.session import SessionEvent, SessionStats, TranscriptEvent
from ch04_streaming.wire import WireMessage
from ch09_security.recording_keeper import Keeper, Recording
from ch09_security.stream_owner import StreamOwner, stream_owner
from ch09_security.vault import MAX_OBJECT_BYTES
from ch09_security.wrapped_dialect import WrappedDialect, WrappedStream

log = logging.getLogger("ch09_security")
RETAIN = "retain"  # the opt-in query parameter: retain=true

_retain_asked: ContextVar[bool] = ContextVar("retain_asked", default=False)


@dataclass
class RetainingStream(WrappedStream):
    """A dialect stream that also keeps what it is shown, bounded."""

    keeper: Keeper
    owner: StreamOwner
    request: StreamRequest
    max_bytes: int = MAX_OBJECT_BYTES
    _audio: bytearray = field(default_factory=bytearray)
    _finals: list[str] = field(default_factory=list)
    _final_bytes: int = 0
    _audio_cut: bool = False
    _finals_cut: bool = False

    def on_audio(self, payload: bytes) -> None:
        room = self.max_bytes - len(self._audio)
        if len(payload) > room:
            self._audio_cut = True
        self._audio += payload[:room]
        self.inner.on_audio(payload)

    def encode(self, event: SessionEvent) -> list[WireMessage]:
        if isinstance(event, TranscriptEvent) and event.hypothesis.is_final:
            self._keep_final(event.hypothesis.transcript)
        return self.inner.encode(event)

    def _keep_final(self, text: str) -> None:
        if not text or self._finals_cut:  # after a cut, nothing more
            return
        size = self._final_bytes + len(text.encode()) + bool(self._finals)
        if size > self.max_bytes:  # one per line: "\n" between them
            self._finals_cut = True
        else:
            self._finals.append(text)
            self._final_bytes = size

    def closing(self, stats: SessionStats) -> list[WireMessage]:
        messages = self.inner.closing(stats)
        if self._audio or self._finals:
            self.keeper.keep(Recording(
                self.owner.owner, self.owner.stream_id,
                str(self.request.encoding), self.request.sample_rate,
                bytes(self._audio), tuple(self._finals), self._audio_cut,
                self._finals_cut))
        self._audio.clear()
        return messages


class RetainingDialect(WrappedDialect):
    """`inner`, with this service's `retain=true` honoured."""

    def __init__(self, inner: Dialect, keeper: Keeper,
                 max_bytes: int = MAX_OBJECT_BYTES) -> None:
        super().__init__(inner)
        self.keeper, self.max_bytes = keeper, max_bytes

    def parse(self, query: Mapping[str, str],
              defaults: StreamDefaults) -> StreamRequest:
        request = self.inner.parse(query, defaults)
        _retain_asked.set(parse_bool(query, RETAIN, False))  # else 400
        return request

    # --8<-- [start:zero_retention]
    def open_stream(self, request: StreamRequest) -> DialectStream:
        stream = self.inner.open_stream(request)
        if not _retain_asked.get():
            return stream  # the default: nothing kept, nothing buffered
        owner = stream_owner()  # left by the StreamGuard
        if owner is None:  # no guard in front: keep nothing, say so
            log.error("event=retention_unavailable reason=no_owner")
            return stream
        return RetainingStream(stream, self.keeper, owner, request,
                               self.max_bytes)
    # --8<-- [end:zero_retention]


def retaining_dialects(dialects: Mapping[str, Dialect],
                       keeper: Keeper) -> dict[str, Dialect]:
    """Every dialect wrapped, under the same paths."""
    return {path: RetainingDialect(dialect, keeper)
            for path, dialect in dialects.items()}
