"""The decode scheduler: the seam between streams and the engine.

Chapter 4, "End-to-end architecture", and the seam chapter 6 fills. A
session never calls the engine itself: it hands each piece of work to a
`DecodeScheduler` and awaits the hypothesis. Chapter 4 ships the direct
scheduler, which sends each stream's work to the engine as a batch of
its own; chapter 6 puts a cross-stream batcher behind the same Protocol,
so many streams share one call to the device, without the session
changing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ch04_streaming.engine import DecodeRequest, Recognizer, UtteranceDecoder
from ch04_streaming.transcript import Hypothesis


class DecodeUnavailableError(Exception):
    """A scheduler cannot decode this stream's audio (it is overloaded,
    its model is not ready, or this stream's own work failed): the
    stream ends with this reason, and the others go on."""


# --8<-- [start:decode_scheduler]
class DecodeScheduler(Protocol):
    """How a session gets its audio decoded."""

    def new_utterance(self, start_s: float) -> UtteranceDecoder: ...

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        """Advance one stream's decoder; return its hypothesis."""


@dataclass
class DirectScheduler:
    """Each request goes to the engine at once, as a batch of one."""

    recognizer: Recognizer

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return self.recognizer.new_utterance(start_s)

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        [hypothesis] = await self.recognizer.decode([request])
        return hypothesis
# --8<-- [end:decode_scheduler]
