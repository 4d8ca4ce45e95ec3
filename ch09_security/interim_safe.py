"""Redacting interim results so that none shows what the final hides.

Chapter 9, "PII in transcripts: redaction patterns". A final result is
redacted precisely: the entities its policy names are found in its
words and redacted. An interim cannot be: "my card number is four one
one one" holds no card yet, only the start of one, and redacting it as
if it were final would show the first digits of a card the final then
hides. AssemblyAI's answer is to send no partial turns while redaction
is on; this one keeps interims, and redacts each by a rule that hides
more than any final could:

- numbers (cards, SSNs, phones, `numbers`): every run of words that
  may say digits (number words, "oh", "double", "triple", "plus") is
  masked when it says any digit, and a run at the end of the interim,
  which may yet, is held back (not shown);
- e-mail: every joining word ("at", "dot", "underscore", "dash") is
  masked with its neighbours, as is a written address, and the last
  word is held back, for it may yet be followed by a "dot".

Every word of a number entity is in such a run, and every word of a
spoken address is a joining word or next to one. So while an interim's
words are the first words of the final (the engine appends words; it
does not revise them), no interim shows a word its final redacts, nor
a digit of it. The price: interims mask numbers the final shows (a
count, a card number that fails Luhn), and lag a word while e-mail
redaction is on.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from ch04_streaming.transcript import Hypothesis
from ch09_security.pii import (
    EMAIL_WORDS,
    NUMBER_KINDS,
    PLUS,
    EntityKind,
    detect,
)
from ch09_security.redaction import (
    UNDECIDED,
    LabelCounter,
    RedactionPolicy,
    Span,
    apply,
)
from ch09_security.spoken_numbers import key, may_say_digits, normalise


@dataclass(frozen=True)
class InterimView:
    hidden: tuple[range, ...]  # runs of words to mask, in order
    shown: int  # words shown; those after them are held back


def may_hold_digits(word: str) -> bool:
    return may_say_digits(word) or key(word) == PLUS


def says_digits(texts: Sequence[str]) -> bool:
    return any(token.is_digits for token in normalise(texts))


def runs(indices: Collection[int]) -> tuple[range, ...]:
    """Indices as runs of consecutive ones: 1 2 3 7 -> 1-3, 7."""
    found: list[range] = []
    for i in sorted(indices):
        if found and found[-1].stop == i:
            found[-1] = range(found[-1].start, i + 1)
        else:
            found.append(range(i, i + 1))
    return tuple(found)


# --8<-- [start:interim_safe_redaction]
def interim_view(texts: Sequence[str],
                 kinds: Collection[EntityKind]) -> InterimView:
    """What an interim may show: a superset of any final's redaction
    is hidden, and the words that may still grow into one held back."""
    hidden: set[int] = set()
    shown = len(texts)
    if NUMBER_KINDS.intersection(kinds):
        flags = [may_hold_digits(t) for t in texts]
        for run in runs([i for i, flag in enumerate(flags) if flag]):
            if says_digits(texts[run.start:run.stop]):
                hidden.update(run)  # masked, whatever it turns out to be
            elif run.stop == len(texts):
                shown = run.start  # "double", "oh", "plus": wait
    if EntityKind.EMAIL in kinds:
        for i, text in enumerate(texts):
            if key(text) in EMAIL_WORDS or "@" in text:
                hidden.update(range(max(i - 1, 0), i + 2))
        shown = min(shown, len(texts) - 1)  # a "dot" may follow
    return InterimView(runs([i for i in hidden if i < shown]), shown)
# --8<-- [end:interim_safe_redaction]


class InterimSafeRedactor:
    """One stream's redaction: its policy, and its labels' numbers."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self.labels = LabelCounter(policy.numbered)

    def redact(self, hypothesis: Hypothesis) -> Hypothesis:
        texts = [w.text for w in hypothesis.words]
        if hypothesis.is_final:  # precise: only what the policy names
            spans = [Span(e.words, self.label(e.kind))
                     for e in detect(texts, self.policy.kinds)]
            shown = len(texts)
        else:
            view = interim_view(texts, self.policy.kinds)
            spans = [Span(run, UNDECIDED) for run in view.hidden]
            shown = view.shown
        words = apply(hypothesis.words[:shown], spans, self.policy.operator)
        return replace(hypothesis, words=words)

    def label(self, kind: EntityKind) -> str:
        return self.labels.label(self.policy.labels[kind])
