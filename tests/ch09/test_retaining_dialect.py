"""The retaining wrapper: nothing kept unless asked, bounded when asked.

Each test opens its streams in a context of its own, as the server
opens each connection's in a task of its own: the owner the guard
leaves there must not leak into the next test.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TypeVar

import pytest

from ch04_streaming.dialects.deepgram import Deepgram, DeepgramStream
from ch04_streaming.dialects.dialect import (
    Dialect,
    DialectStream,
    RequestError,
    StreamDefaults,
    StreamRequest,
)
from ch04_streaming.session import SessionEvent, SessionStats, TranscriptEvent
from ch04_streaming.transcript import Hypothesis, Word
from ch04_streaming.wire import WireMessage
from ch07_api import database
from ch09_security.key_ring import KeyRing
from ch09_security.recording_keeper import RecordingKeeper
from ch09_security.retaining_dialect import RetainingDialect, RetainingStream
from ch09_security.stream_owner import StreamOwner, admitted, stream_owner
from ch09_security.vault import AudioVault, ObjectKind
from ch09_security.wrapped_dialect import WrappedDialect, WrappedStream

T = TypeVar("T")
ACME = StreamOwner("stream-1", "acme", "key_1")
QUERY = {"encoding": "linear16", "sample_rate": "16000"}


@pytest.fixture
async def keeper(tmp_path: Path) -> AsyncIterator[RecordingKeeper]:
    vault = AudioVault(
        database.open_engine(f"sqlite:///{tmp_path}/kept.sqlite3"),
        KeyRing(bytes(32), lambda: 0))
    vault.create_schema()
    yield RecordingKeeper(vault)
    vault.engine.dispose()


def in_own_context(work: Callable[[], T]) -> T:
    """Run `work` as a new connection's task would: a fresh context."""
    return contextvars.Context().run(work)


def final(text: str, final: bool = True) -> TranscriptEvent:
    words = tuple(Word(w, i * 0.3, i * 0.3 + 0.2)
                  for i, w in enumerate(text.split()))
    return TranscriptEvent(Hypothesis(words, final), 0.0, 1.0,
                           speech_final=final, from_finalize=False)


def opened(dialect: Dialect, query: Mapping[str, str],
           owner: StreamOwner | None) -> DialectStream:
    """Parse, admit (the guard's part) and open, in one context."""
    def connection() -> DialectStream:
        request = dialect.parse(query, StreamDefaults())
        if owner is not None:
            admitted(owner)
        return dialect.open_stream(request)
    return in_own_context(connection)


def stream_through(stream: DialectStream, audio: list[bytes],
                   events: list[TranscriptEvent]) -> None:
    for payload in audio:
        stream.on_audio(payload)
    for event in events:
        stream.encode(event)
    stream.closing(SessionStats())


def test_a_stream_that_does_not_ask_gets_the_inner_stream_itself(
    keeper: RecordingKeeper,
) -> None:
    dialect = RetainingDialect(Deepgram(), keeper)
    for query in (QUERY, {**QUERY, "retain": "false"}):
        assert type(opened(dialect, query, ACME)) is DeepgramStream


@pytest.mark.parametrize("value", ["maybe", "", "2"])
def test_a_retain_value_that_is_not_a_boolean_is_refused(
    keeper: RecordingKeeper, value: str,
) -> None:
    dialect = RetainingDialect(Deepgram(), keeper)
    with pytest.raises(RequestError, match="retain must be true or false"):
        dialect.parse({**QUERY, "retain": value}, StreamDefaults())


def test_the_owner_never_leaks_from_one_connection_to_the_next() -> None:
    in_own_context(lambda: admitted(ACME))
    assert in_own_context(stream_owner) is None
    assert stream_owner() is None


def test_without_a_guard_in_front_nothing_is_kept_and_it_is_said(
    keeper: RecordingKeeper, caplog: pytest.LogCaptureFixture,
) -> None:
    dialect = RetainingDialect(Deepgram(), keeper)
    stream = opened(dialect, {**QUERY, "retain": "true"}, None)
    assert type(stream) is DeepgramStream
    assert "event=retention_unavailable reason=no_owner" in caplog.text


async def test_only_finals_are_kept_and_the_audio_as_sent(
    keeper: RecordingKeeper,
) -> None:
    dialect = RetainingDialect(Deepgram(), keeper)
    stream = opened(dialect, {**QUERY, "retain": "true"}, ACME)
    assert isinstance(stream, RetainingStream)
    stream_through(stream, [b"\x01\x02" * 100, b"\x03\x04" * 50],
                   [final("turn off", False), final("turn off the lights"),
                    final("", True), final("thank you")])
    await keeper.settled()
    audio, transcript = keeper.vault.listing("acme")
    assert (audio.kind, audio.stream_id) == (ObjectKind.AUDIO, "stream-1")
    assert (audio.encoding, audio.sample_rate) == ("linear16", 16_000)
    assert keeper.vault.read(audio.object_id) == (b"\x01\x02" * 100
                                                  + b"\x03\x04" * 50)
    assert not audio.truncated
    assert keeper.vault.read(transcript.object_id) == (
        b"turn off the lights\nthank you")


async def test_audio_beyond_the_cap_is_dropped_and_the_cut_recorded(
    keeper: RecordingKeeper,
) -> None:
    dialect = RetainingDialect(Deepgram(), keeper, max_bytes=1000)
    stream = opened(dialect, {**QUERY, "retain": "true"}, ACME)
    stream_through(stream, [b"\x01\x00" * 300] * 3,
                   [final("word " * 198), final("more words"),
                    final("over"), final("x")])
    await keeper.settled()
    audio, transcript = keeper.vault.listing("acme")
    assert audio.size_bytes == 1000 and audio.truncated
    assert transcript.truncated and transcript.size_bytes == 1000
    assert keeper.vault.read(transcript.object_id) == (
        b"word " * 198).strip() + b"\nmore words"  # 1000 bytes: it fits


async def test_a_stream_with_nothing_to_keep_stores_nothing(
    keeper: RecordingKeeper,
) -> None:
    dialect = RetainingDialect(Deepgram(), keeper)
    stream_through(opened(dialect, {**QUERY, "retain": "true"}, ACME),
                   [], [])
    await keeper.settled()
    assert keeper.vault.listing() == []


async def test_a_failed_write_is_logged_without_content(
    keeper: RecordingKeeper, caplog: pytest.LogCaptureFixture,
) -> None:
    dialect = RetainingDialect(Deepgram(), keeper)
    keeper.vault.max_object_bytes = 10
    stream_through(opened(dialect, {**QUERY, "retain": "true"}, ACME),
                   [b"\x07\x07" * 50], [final("secret words")])
    await keeper.settled()
    assert ("event=retention_failed stream_id=stream-1 owner=acme "
            "error=ObjectTooLargeError") in caplog.text
    assert "secret" not in caplog.text
    assert keeper.vault.listing() == []


# Another wrapper, shaped as a redacting one is: its own request type
# (copied field by field from the inner request) and a stream that
# rewrites transcript events before the inner stream sees them.
@dataclass(frozen=True)
class MaskedRequest(StreamRequest):
    mask: str = ""


@dataclass
class MaskingStream(WrappedStream):
    mask: str

    def encode(self, event: SessionEvent) -> list[WireMessage]:
        if isinstance(event, TranscriptEvent):
            words = tuple(replace(w, text="***") if w.text == self.mask
                          else w for w in event.hypothesis.words)
            event = replace(event, hypothesis=replace(event.hypothesis,
                                                      words=words))
        return self.inner.encode(event)


class MaskingDialect(WrappedDialect):
    def parse(self, query: Mapping[str, str],
              defaults: StreamDefaults) -> StreamRequest:
        inner = self.inner.parse(query, defaults)
        copied = {f.name: getattr(inner, f.name) for f in fields(inner)}
        return MaskedRequest(**copied, mask=query.get("mask", ""))

    def open_stream(self, request: StreamRequest) -> DialectStream:
        stream = self.inner.open_stream(request)
        assert isinstance(request, MaskedRequest)
        return MaskingStream(stream, request.mask)


@pytest.mark.parametrize("order", ["masking outside", "retaining outside"])
async def test_it_composes_with_another_wrapper_either_way(
    keeper: RecordingKeeper, order: str,
) -> None:
    dialect: Dialect = (
        MaskingDialect(RetainingDialect(Deepgram(), keeper))
        if order == "masking outside"
        else RetainingDialect(MaskingDialect(Deepgram()), keeper))
    stream = opened(dialect, {**QUERY, "retain": "true", "mask": "four"},
                    ACME)
    sent = stream.encode(final("my pin is four"))
    stream.on_audio(b"\x05\x00" * 10)
    stream.closing(SessionStats())
    assert "***" in sent[0].to_json() and "four" not in sent[0].to_json()
    await keeper.settled()
    _, transcript = keeper.vault.listing("acme")
    kept = keeper.vault.read(transcript.object_id)
    # Inside the masking wrapper, retention keeps what the client saw.
    assert kept == (b"my pin is ***" if order == "masking outside"
                    else b"my pin is four")


def test_a_refused_request_is_refused_by_the_inner_dialect_first(
    keeper: RecordingKeeper,
) -> None:
    dialect = RetainingDialect(Deepgram(), keeper)
    with pytest.raises(RequestError, match="encoding"):
        dialect.parse({"encoding": "speex", "retain": "true"},
                      StreamDefaults())
