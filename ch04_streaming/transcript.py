"""What recognition produces: words with times, and hypotheses.

Chapter 4, "Partial results". A hypothesis is the engine's current
belief about one utterance: interim ones may still change, a final one
will not. Times are seconds from the start of the stream. A hypothesis also
says how much accelerator time its decode took (`device_s`), so a
stream's compute time can be metered (chapter 8).
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    # This request's share of its batch's device time (`device_shares`);
    # not part of what was recognised, so not compared.
    device_s: float = field(default=0.0, compare=False)

    @property
    def transcript(self) -> str:
        return " ".join(w.text for w in self.words)
