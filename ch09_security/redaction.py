"""What a redaction does to a hypothesis' words: mask, replace, remove.

Chapter 9, "PII in transcripts: redaction patterns". A policy says
which kinds of entity to redact and how. Masking keeps every word and
its times and hides its text behind a `#` for each character it said
(a spoken digit is one): AssemblyAI's `hash`. Replacement puts one word,
the entity's name, where the entity's words were, from the first
word's start to the last one's end: AssemblyAI's `entity_name`
("[PHONE_NUMBER]"), and Deepgram's labels, numbered per stream
("[PHONE_NUMBER_1]"). Removal drops the words. The transcript is always
the words joined, so text and words never disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from ch04_streaming.transcript import Word
from ch09_security.pii import EntityKind
from ch09_security.spoken_numbers import normalise


class Operator(StrEnum):
    MASK = "mask"
    LABEL = "label"
    REMOVE = "remove"


ASSEMBLYAI_LABELS = {kind: kind.value.upper() for kind in EntityKind}
DEEPGRAM_LABELS = {EntityKind.CREDIT_CARD: "CREDIT_CARD",
                   EntityKind.US_SSN: "SSN",
                   EntityKind.PHONE: "PHONE_NUMBER",
                   EntityKind.EMAIL: "EMAIL_ADDRESS",
                   EntityKind.NUMBER: "NUMBER"}
UNDECIDED = "REDACTED"  # the label of words an interim hides unclassified


@dataclass(frozen=True)
class RedactionPolicy:
    kinds: frozenset[EntityKind] = frozenset()
    operator: Operator = Operator.MASK
    labels: Mapping[EntityKind, str] = field(
        default_factory=lambda: ASSEMBLYAI_LABELS, hash=False)
    numbered: bool = False  # Deepgram's [SSN_1], [SSN_2] ...

    @property
    def active(self) -> bool:
        return bool(self.kinds)


NO_REDACTION = RedactionPolicy()


@dataclass(frozen=True)
class Span:
    """Words to redact: indices into a hypothesis' words, and what an
    entity label would call them."""

    words: range
    label: str


def mask_widths(texts: Sequence[str]) -> list[int]:
    """Characters each word says: the digits it speaks, or its length."""
    widths = [len(t) for t in texts]
    for token in normalise(texts):
        spoken = Counter(token.digit_words)
        for i in token.words:
            widths[i] = spoken[i] if token.is_digits else widths[i]
    return [max(width, 1) for width in widths]


def apply(words: Sequence[Word], spans: Sequence[Span],
          operator: Operator) -> tuple[Word, ...]:
    """`words` with each span redacted by `operator`; spans are in
    order and do not overlap."""
    widths = mask_widths([w.text for w in words])
    out: list[Word] = []
    i = 0
    for span in spans:
        out += words[i:span.words.start]
        hidden = words[span.words.start:span.words.stop]
        if operator is Operator.MASK:
            out += [replace(w, text="#" * widths[n])
                    for n, w in zip(span.words, hidden, strict=True)]
        elif operator is Operator.LABEL:
            out.append(Word(f"[{span.label}]", hidden[0].start,
                            hidden[-1].end,
                            min(w.confidence for w in hidden)))
        i = span.words.stop
    out += words[i:]
    return tuple(out)


@dataclass
class LabelCounter:
    """Per-stream numbering of labels: the first card is CREDIT_CARD_1."""

    numbered: bool
    seen: Counter[str] = field(default_factory=Counter)

    def label(self, name: str) -> str:
        if not self.numbered:
            return name
        self.seen[name] += 1
        return f"{name}_{self.seen[name]}"
