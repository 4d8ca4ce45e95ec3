"""Result latency, as the server sees it: from the words' audio in to
the result out.

Chapter 4, and the latency SLIs of chapter 11. Per utterance, the first
result is timed from the arrival of the frame that held its first word,
and the final from the arrival of the frame that held its last word;
both go to the service's histograms. (Clients time the same results
from when the audio was spoken, which adds the chunk's fill time.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ch04_streaming.metrics import ServiceMetrics
from ch04_streaming.session import ArrivalLog, TranscriptEvent


@dataclass
class ResultLatency:
    """Times one stream's results into the service's histograms."""

    metrics: ServiceMetrics
    dialect: str
    arrivals: ArrivalLog
    clock: Callable[[], float] = time.monotonic
    _answered: set[float] = field(default_factory=set, init=False)

    def observe(self, event: TranscriptEvent) -> None:
        words, now = event.hypothesis.words, self.clock()
        if not words:
            return
        if event.start_s not in self._answered:
            self._answered.add(event.start_s)
            heard = self.arrivals.time_of(words[0].start)
            if heard is not None:
                self.metrics.first_result.labels(self.dialect).observe(
                    now - heard)
        if event.hypothesis.is_final:
            self._answered.discard(event.start_s)
            heard = self.arrivals.time_of(words[-1].end)
            if heard is not None:
                self.metrics.final_latency.labels(self.dialect).observe(
                    now - heard)
