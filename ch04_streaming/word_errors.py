"""Seeded word errors, so later chapters can measure WER on a mock.

Chapter 11 computes word error rate, which is zero for a perfect mock.
`WordErrorInjector` substitutes, deletes and inserts words at set rates.
Each decision is a pure function of the seed, the word and its place in
the utterance, so interim and final results agree, and a rerun with the
same seed makes the same mistakes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ch04_streaming.transcript import Word

CONFUSIONS = ("a", "the", "and", "in", "on", "for", "to", "of", "it")
FILLERS = ("uh", "um", "so")


def draw(*key: object) -> float:
    """A uniform number in [0, 1) that depends only on `key`."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class WordErrorInjector:
    seed: int = 0
    substitution: float = 0.0
    deletion: float = 0.0
    insertion: float = 0.0

    def __post_init__(self) -> None:
        rates = (self.substitution, self.deletion, self.insertion)
        if any(not 0.0 <= r <= 1.0 for r in rates):
            raise ValueError("error rates are fractions from 0 to 1")
        if self.substitution + self.deletion > 1.0:
            raise ValueError("substitution + deletion must not exceed 1")

    @property
    def active(self) -> bool:
        return any((self.substitution, self.deletion, self.insertion))

    def apply(self, words: Sequence[Word]) -> list[Word]:
        out: list[Word] = []
        for index, word in enumerate(words):
            roll = draw(self.seed, "edit", index, word.text)
            if roll < self.deletion:
                continue
            if roll < self.deletion + self.substitution:
                pick = draw(self.seed, "sub", index, word.text)
                choice = CONFUSIONS[int(pick * len(CONFUSIONS))]
                out.append(replace(word, text=choice))
            else:
                out.append(word)
            if draw(self.seed, "ins", index, word.text) < self.insertion:
                pick = draw(self.seed, "filler", index)
                filler = FILLERS[int(pick * len(FILLERS))]
                out.append(replace(word, text=filler))
        return out
