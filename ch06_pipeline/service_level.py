"""What each degradation level changes, and how clients see it.

Chapter 6, "Graceful degradation under load". The level lives in one
policy; three parts of the pipeline read it. Sessions read their
interim cadence (`LevelCadence`): at "fewer interims" an interim waits
for half a second of new speech, at "no interims" none is shown and the
audio is still decoded each second, so a final never waits on a
backlog. The scheduler picks the cheaper model for new utterances. And
admission (`PipelineHooks`, chapter 4's stream hooks) refuses new
streams at the last level with a time to retry: HTTP 503 with
`Retry-After` before the WebSocket upgrade, RESOURCE_EXHAUSTED on gRPC.
Every admitted stream is told the level it starts at
(`x-service-level` on the 101 response, or in the gRPC initial
metadata) and gets its trace span here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.trace import Tracer

from ch04_streaming.stream_hooks import (
    Refusal,
    StreamStart,
    StreamTracker,
)
from ch06_pipeline import tracing
from ch06_pipeline.degradation import Level
from ch06_pipeline.pipeline_metrics import PipelineMetrics

LEVEL_HEADER = "x-service-level"


@dataclass(frozen=True)
class LevelCadence:
    """Chapter 4's `InterimCadence`, set by the degradation level."""

    level: Callable[[], Level]
    fewer_interims_s: float = 0.5
    decode_every_s: float = 1.0  # when no interim is shown

    @property
    def min_interim_s(self) -> float:
        level = self.level()
        if level >= Level.NO_INTERIMS:
            return self.decode_every_s
        return self.fewer_interims_s if level else 0.0

    @property
    def show_interims(self) -> bool:
        return self.level() < Level.NO_INTERIMS


@dataclass
class TracedStream:
    """A tracker that ends the stream's span however it ends."""

    trace: tracing.StreamTrace

    async def audio(self, seconds: float) -> str | None:
        return None

    async def ended(self) -> None:
        self.trace.end("ended")


@dataclass
class PipelineHooks:
    """Admission by service level; a span for each stream admitted."""

    level: Callable[[], Level]
    tracer: Tracer
    transport: str  # "websocket" or "grpc"
    refusal_status: int  # 503 before an upgrade; 429 on gRPC
    retry_after_s: float = 5.0
    metrics: PipelineMetrics | None = None

    async def admit(self, start: StreamStart) -> StreamTracker | Refusal:
        level = self.level()
        if level >= Level.REJECT_NEW_STREAMS:
            if self.metrics is not None:
                self.metrics.drops.labels("new_stream_refused").inc()
            return Refusal(
                self.refusal_status,
                f"overloaded ({level.label}): retry in"
                f" {self.retry_after_s:g} s", self.retry_after_s)
        start.reply_headers[LEVEL_HEADER] = level.label
        return TracedStream(tracing.start_stream(
            self.tracer, start.headers, start.stream_id, self.transport))
