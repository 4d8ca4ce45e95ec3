"""What recognition produces: words with times, and hypotheses.

Chapter 4, "Partial results". A hypothesis is the engine's current
belief about one utterance: interim ones may still change, a final one
will not. Times are seconds from the start of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    confidence: float = 1.0


@dataclass(frozen=True)
class Hypothesis:
    words: tuple[Word, ...]
    is_final: bool

    @property
    def transcript(self) -> str:
        return " ".join(w.text for w in self.words)
