"""How often an interim shows a word its final then corrects.

Chapter 4, "Inference" (interim results). An interim is a guess: the
sooner it comes, the likelier a word in it is wrong, and a live caption
that flickers from a wrong word to the right one costs the reader's
trust. Every interim is compared, word by word, with the final of its
utterance: a word the final does not have at that place is counted
wrong. Interims are grouped with the next final, as the client receives
them in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ch04_streaming.client import Result


@dataclass(frozen=True)
class Revisions:
    interims: int
    revised: int  # interims with at least one wrong word
    words: int  # words shown in interims
    wrong_words: int

    def __add__(self, other: Revisions) -> Revisions:
        return Revisions(self.interims + other.interims,
                         self.revised + other.revised,
                         self.words + other.words,
                         self.wrong_words + other.wrong_words)

    @property
    def wrong_word_share(self) -> float:
        return self.wrong_words / self.words if self.words else 0.0


NONE = Revisions(0, 0, 0, 0)


def wrong_words(interim: str, final: str) -> int:
    final_words = final.split()
    return sum(i >= len(final_words) or word != final_words[i]
               for i, word in enumerate(interim.split()))


def revisions(results: Iterable[Result]) -> Revisions:
    """Wrong interim words of one stream's results, in arrival order."""
    total, waiting = NONE, list[str]()
    for result in results:
        if not result.is_final:
            if result.text:
                waiting.append(result.text)
            continue
        for interim in waiting:
            wrong = wrong_words(interim, result.text)
            total += Revisions(1, int(wrong > 0), len(interim.split()),
                               wrong)
        waiting = []
    return total
