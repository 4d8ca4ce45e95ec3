"""Operators: masking, entity names (numbered or not), and removal."""

from __future__ import annotations

from ch04_streaming.transcript import Hypothesis, Word
from ch09_security.interim_safe import InterimSafeRedactor
from ch09_security.pii import EntityKind
from ch09_security.redaction import (
    DEEPGRAM_LABELS,
    Operator,
    RedactionPolicy,
    Span,
    apply,
    mask_widths,
)


def timed(text: str) -> tuple[Word, ...]:
    """Words half a second apart, each 0.4 s long, confidence 0.9."""
    return tuple(Word(w, i * 0.5, i * 0.5 + 0.4, 0.9)
                 for i, w in enumerate(text.split()))


def final(text: str) -> Hypothesis:
    return Hypothesis(timed(text), is_final=True)


CALL = "call five five five zero one nine nine now"


def test_masking_keeps_every_word_and_its_times() -> None:
    words = timed(CALL)
    masked = apply(words, [Span(range(1, 8), "PHONE_NUMBER")],
                   Operator.MASK)
    assert [w.text for w in masked] == ["call", *["#"] * 7, "now"]
    assert [(w.start, w.end) for w in masked] == [
        (w.start, w.end) for w in words]


def test_a_mask_has_a_hash_for_each_character_said() -> None:
    # a digit word says one digit, "twenty" two, other words themselves
    assert mask_widths(["jo", "at", "twenty", "double", "five"]) == [
        2, 2, 2, 1, 1]


def test_an_entity_name_replaces_its_words_spanning_their_times() -> None:
    words = timed(CALL)
    labelled = apply(words, [Span(range(1, 8), "PHONE_NUMBER")],
                     Operator.LABEL)
    assert [w.text for w in labelled] == ["call", "[PHONE_NUMBER]", "now"]
    assert (labelled[1].start, labelled[1].end) == (words[1].start,
                                                    words[7].end)
    assert labelled[1].confidence == 0.9


def test_removal_drops_the_words() -> None:
    removed = apply(timed(CALL), [Span(range(1, 8), "PHONE_NUMBER")],
                    Operator.REMOVE)
    assert " ".join(w.text for w in removed) == "call now"


def test_deepgram_numbers_its_labels_through_the_stream() -> None:
    policy = RedactionPolicy(frozenset({EntityKind.PHONE}), Operator.LABEL,
                             DEEPGRAM_LABELS, numbered=True)
    redactor = InterimSafeRedactor(policy)
    first = redactor.redact(final(f"{CALL} or two one two five five five"
                                  " zero one nine nine"))
    second = redactor.redact(final(CALL))
    assert first.transcript == ("call [PHONE_NUMBER_1] now or"
                                " [PHONE_NUMBER_2]")
    assert second.transcript == "call [PHONE_NUMBER_3] now"


def test_assemblyai_names_without_numbers() -> None:
    policy = RedactionPolicy(frozenset({EntityKind.PHONE}), Operator.LABEL)
    redacted = InterimSafeRedactor(policy).redact(final(CALL))
    assert redacted.transcript == "call [PHONE_NUMBER] now"


def test_a_final_is_redacted_only_where_the_policy_says() -> None:
    policy = RedactionPolicy(frozenset({EntityKind.CREDIT_CARD}))
    redacted = InterimSafeRedactor(policy).redact(final(CALL))
    assert redacted == final(CALL)
