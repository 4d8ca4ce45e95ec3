"""Result latency, as the server sees it: from the words' audio in to
the result out.

Chapter 4, and the latency SLIs of chapter 11. Per utterance, the first
result is timed from the arrival of the frame that held its first word,
and the final from the arrival of the frame that held its last word;
both go to the service's histograms. A stream whose channels are
transcribed one by one has an arrival log and utterances per channel:
an event's channel picks its log. (Clients time the same results from
when the audio was spoken, which adds the chunk's fill time.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ch04_streaming.metrics import ServiceMetrics
from ch04_streaming.session import ArrivalLog, TranscriptEvent


@dataclass
class ResultLatency:
    """Times one stream's results into the service's histograms."""

    metrics: ServiceMetrics
    dialect: str
    arrivals: Sequence[ArrivalLog]  # by channel
    clock: Callable[[], float] = time.monotonic
    # utterances with a result already, by channel and start
    _answered: set[tuple[int, float]] = field(default_factory=set,
                                              init=False)

    def observe(self, event: TranscriptEvent) -> None:
        words, now = event.hypothesis.words, self.clock()
        if not words:
            return
        arrivals = self.arrivals[event.channel]
        utterance = (event.channel, event.start_s)
        if utterance not in self._answered:
            self._answered.add(utterance)
            heard = arrivals.time_of(words[0].start)
            if heard is not None:
                self.metrics.first_result.labels(self.dialect).observe(
                    now - heard)
        if event.hypothesis.is_final:
            self._answered.discard(utterance)
            heard = arrivals.time_of(words[-1].end)
            if heard is not None:
                self.metrics.final_latency.labels(self.dialect).observe(
                    now - heard)
