"""The redacting wrapper around chapter 4's dialects, event by event.

No fixture speaks a Luhn-valid card, so `pci` is shown here on the
events a session would emit for one: interims growing a word at a time,
then the final, through the wrapped dialect's stream into its messages.
"""

from __future__ import annotations

import json

import pytest

from ch04_streaming.dialects.assemblyai import AssemblyAI, AssemblyAIStream
from ch04_streaming.dialects.deepgram import Deepgram, DeepgramStream
from ch04_streaming.dialects.dialect import (
    Dialect,
    RequestError,
    StreamDefaults,
)
from ch04_streaming.session import (
    SessionStats,
    SpeechStartedEvent,
    TranscriptEvent,
    UtteranceEndEvent,
)
from ch04_streaming.transcript import Hypothesis, Word
from ch05_protocols.ws_dialects import BASE64
from ch09_security.pii import EntityKind
from ch09_security.redacting_dialect import (
    RedactedRequest,
    RedactingDialect,
    RedactingStream,
    redacting_dialects,
)

VISA = ["my", "card", "is", "four", *["one"] * 15]
CARD_WORDS = {"four", "one"}


def events(words: list[str]) -> list[TranscriptEvent]:
    """A session's transcript events for `words`: growing interims,
    then the final."""
    timed = tuple(Word(w, 0.5 + i * 0.3, 0.75 + i * 0.3)
                  for i, w in enumerate(words))
    return [TranscriptEvent(Hypothesis(timed[:n], is_final=n == len(words)),
                            start_s=0.5, end_s=timed[n - 1].end,
                            speech_final=n == len(words),
                            from_finalize=False)
            for n in range(1, len(words) + 1)]


def texts_on_the_wire(dialect: Dialect, query: dict[str, str],
                      said: list[str]) -> list[list[str]]:
    """Every text field of every message, one list per message."""
    stream = dialect.open_stream(dialect.parse(query, StreamDefaults()))
    sent = [message.to_json() for event in events(said)
            for message in stream.encode(event)]
    return [texts_of(json.loads(raw)) for raw in sent]


def texts_of(message: object) -> list[str]:
    if isinstance(message, dict):
        return [text for name, value in message.items()
                for text in ([value] if name in TEXT_FIELDS
                             and isinstance(value, str)
                             else texts_of(value))]
    if isinstance(message, list):
        return [text for value in message for text in texts_of(value)]
    return []


TEXT_FIELDS = {"transcript", "word", "punctuated_word", "text"}


def shown_words(texts: list[str]) -> set[str]:
    return {word for text in texts for word in text.split()}


def test_deepgram_pci_hides_a_card_in_every_interim_and_the_final() -> None:
    wire = texts_on_the_wire(
        RedactingDialect(Deepgram()),
        {"redact": "pci", "interim_results": "true"}, VISA)
    assert len(wire) == len(VISA)
    for texts in wire:
        assert not CARD_WORDS & shown_words(texts)
        assert not any("4111" in text for text in texts)
    final = wire[-1]
    assert final[0] == "my card is [CREDIT_CARD_1]"  # the transcript
    assert [w for w in final[1:] if "CARD" in w] == ["[CREDIT_CARD_1]"] * 2


def test_without_redaction_the_card_is_on_the_wire() -> None:
    wire = texts_on_the_wire(RedactingDialect(Deepgram()),
                             {"interim_results": "true"}, VISA)
    assert wire[-1][0] == " ".join(VISA)
    assert shown_words(wire[4]) >= CARD_WORDS  # "my card is four one"


def test_assemblyai_hashes_a_card_in_partial_and_final_turns() -> None:
    wire = texts_on_the_wire(
        RedactingDialect(AssemblyAI()),
        {"redact_pii": "true", "redact_pii_policies": "credit_card_number",
         "include_partial_turns": "true"}, VISA)
    for texts in wire:
        assert not CARD_WORDS & shown_words(texts)
    assert wire[-1][0] == "my card is " + " ".join("#" * 16)


def test_the_request_carries_its_policy_to_the_stream() -> None:
    dialect = RedactingDialect(Deepgram())
    request = dialect.parse({"redact": "pci,numbers"}, StreamDefaults())
    assert isinstance(request, RedactedRequest)
    assert request.redaction.kinds == {EntityKind.CREDIT_CARD,
                                       EntityKind.NUMBER}
    assert request.encoding == Deepgram().parse({}, StreamDefaults()
                                                ).encoding
    assert isinstance(dialect.open_stream(request), RedactingStream)
    again = dialect.parse({"redact": "numbers,pci"}, StreamDefaults())
    assert again == request and hash(again) == hash(request)


def test_a_stream_without_redaction_is_the_inner_stream() -> None:
    dialect = RedactingDialect(Deepgram())
    plain = dialect.open_stream(dialect.parse({}, StreamDefaults()))
    assert isinstance(plain, DeepgramStream)
    inner = dialect.open_stream(Deepgram().parse({}, StreamDefaults()))
    assert isinstance(inner, DeepgramStream)


def test_assemblyai_partials_follow_include_partial_turns() -> None:
    dialect = RedactingDialect(AssemblyAI())
    quiet = dialect.parse({"redact_pii": "true"}, StreamDefaults())
    chatty = dialect.parse({"redact_pii": "true",
                            "include_partial_turns": "true"},
                           StreamDefaults())
    assert not quiet.options.interim_results
    assert chatty.options.interim_results
    assert dialect.parse({}, StreamDefaults()).options.interim_results


def test_the_inner_dialect_still_parses_and_refuses() -> None:
    dialect = RedactingDialect(Deepgram())
    with pytest.raises(RequestError, match="encoding"):
        dialect.parse({"encoding": "speex", "redact": "pci"},
                      StreamDefaults())
    with pytest.raises(RequestError, match="redact"):
        dialect.parse({"redact": "phi"}, StreamDefaults())


def test_everything_but_transcripts_passes_through() -> None:
    dialect = RedactingDialect(Deepgram())
    inner = Deepgram()
    stream = dialect.open_stream(dialect.parse({"redact": "pci"},
                                               StreamDefaults()))
    assert stream.opening() == []
    stream.on_audio(b"\x00\x00")
    assert [m.to_json() for m in stream.encode(SpeechStartedEvent(1.5))] == [
        m.to_json() for m in DeepgramStream(
            inner.parse({}, StreamDefaults())).encode(
                SpeechStartedEvent(1.5))]
    (end,) = stream.encode(UtteranceEndEvent(2.0))
    assert json.loads(end.to_json())["last_word_end"] == 2.0
    (metadata,) = stream.closing(SessionStats(received_s=1.0))
    assert json.loads(metadata.to_json())["type"] == "Metadata"
    assert dialect.credential({"Authorization": "Token k"}, {}) == "k"
    assert dialect.error_headers("bad") == {"dg-error": "bad"}
    assert dialect.read_frame(b"\x01") == b"\x01"
    assert (dialect.name, dialect.path, dialect.codes) == (
        inner.name, inner.path, inner.codes)


def test_every_served_dialect_is_wrapped_under_its_path() -> None:
    wrapped = redacting_dialects({"/v1/listen": Deepgram(),
                                  "/v3/ws": AssemblyAI()})
    assert {path: d.name for path, d in wrapped.items()} == {
        "/v1/listen": "deepgram", "/v3/ws": "assemblyai"}
    assert all(isinstance(d, RedactingDialect) for d in wrapped.values())
    assert isinstance(wrapped["/v3/ws"].open_stream(
        wrapped["/v3/ws"].parse({}, StreamDefaults())), AssemblyAIStream)


def test_a_dialect_without_known_parameters_needs_a_reader() -> None:
    with pytest.raises(ValueError, match="no redaction parameters"):
        RedactingDialect(BASE64)
