"""The pipeline's decode scheduler: chapter 4's seam, batched.

Chapter 6, "Connecting the transport layer to the inference layer". A
session asks for each decode through chapter 4's `DecodeScheduler`, as
it always did; here the request goes into the cross-stream batcher and
comes back when its batch has run. Around that: a full queue makes the
request wait for room a bounded time, then ends the stream with a clear
reason; a model that is not ready (a cold start) is waited for a
bounded time, then its batch is refused; a batch the engine or the
device refuses is split in halves until the request at fault is found,
and only that stream gets the error. Every batch is accounted for:
its size, the waits in it, its time against its audio, and a span
linked to the utterances it served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry.trace import Span, Tracer

from ch03_gpu.batcher import BatcherClosedError, BatcherFullError
from ch04_streaming.engine import DecodeRequest, Recognizer, UtteranceDecoder
from ch04_streaming.scheduler import DecodeUnavailableError
from ch04_streaming.transcript import Hypothesis
from ch06_pipeline import tracing
from ch06_pipeline.cross_stream_batcher import (
    CrossStreamBatcher,
    Outcome,
    UtteranceTag,
    batch_audio_s,
    model_of,
)
from ch06_pipeline.degradation import Level, QueueWaits
from ch06_pipeline.pipeline_metrics import PipelineMetrics

log = logging.getLogger("ch06_pipeline")

FULL, CHEAPER = "full", "cheaper"


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int = 256
    max_wait_s: float = 0.005
    max_queue: int = 2048  # requests; each stream has at most one
    max_interim_wait_s: float = 0.1  # then an interim goes first
    room_wait_s: float = 1.0  # for a full queue, then the stream ends
    ready_wait_s: float = 5.0  # for a model still loading


@dataclass(frozen=True)
class BatchRecord:
    """What one batch did: the scheduler's per-batch accounting."""

    model: str
    size: int
    finals: int
    audio_s: float
    longest_wait_s: float
    run_s: float
    failed: int


class ModelNotReadyError(DecodeUnavailableError):
    pass


class QueueFullError(DecodeUnavailableError):
    """The queue stayed full for the whole wait for room."""


@dataclass
class PipelineScheduler:
    """Implements chapter 4's `DecodeScheduler` for every stream."""

    models: Mapping[str, Recognizer]  # FULL, and CHEAPER if offered
    config: BatchingConfig
    level: Callable[[], Level]
    waits: QueueWaits
    tracer: Tracer
    metrics: PipelineMetrics | None = None
    clock: Callable[[], float] = time.monotonic
    on_batch: Callable[[BatchRecord], None] = lambda record: None
    batches: int = 0
    batcher: CrossStreamBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.batcher = CrossStreamBatcher(
            self._run_batch, self.config.max_batch_size,
            self.config.max_wait_s, self.config.max_queue,
            self.config.max_interim_wait_s, self._drop)

    def start(self) -> None:
        self.batcher.start()

    async def close(self, grace_s: float = 5.0) -> None:
        await self.batcher.close(grace_s)

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        degraded = self.level() >= Level.CHEAPER_MODEL
        model = CHEAPER if degraded and CHEAPER in self.models else FULL
        return self.new_utterance_on(model, start_s)

    def new_utterance_on(self, model: str, start_s: float
                         ) -> UtteranceDecoder:
        """An utterance for a model the caller chose (chapter 7's
        requests name their model)."""
        decoder = self.models[model].new_utterance(start_s)
        span = tracing.start_utterance(self.tracer, start_s, model)
        decoder.tag = UtteranceTag(model, span)
        return decoder

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        future = await self._submit(request)
        try:
            outcome = await future
        except BatcherClosedError:
            raise DecodeUnavailableError(
                "server shutting down: no more decoding") from None
        if isinstance(outcome, BaseException):
            raise DecodeUnavailableError(str(outcome)) from outcome
        tag = request.decoder.tag
        if request.final and isinstance(tag, UtteranceTag) and tag.span:
            assert isinstance(tag.span, Span)
            tracing.end_utterance(tag.span, len(outcome.words))
        return outcome

    # --8<-- [start:bounded_queue_policy]
    async def _submit(self, request: DecodeRequest
                      ) -> asyncio.Future[Outcome]:
        """Queue the request, waiting for room a bounded time."""
        deadline = self.clock() + self.config.room_wait_s
        while True:
            try:
                return self.batcher.submit(request)
            except BatcherFullError as full:
                if self.clock() >= deadline:
                    self._drop("queue_full")
                    raise QueueFullError(
                        f"overloaded: {full.capacity} requests queued;"
                        " retry in 1 s") from None
                await asyncio.sleep(self.config.max_wait_s or 0.001)
            except BatcherClosedError:
                raise DecodeUnavailableError(
                    "server shutting down: no more decoding") from None
    # --8<-- [end:bounded_queue_policy]

    # --8<-- [start:cross_stream_batch]
    async def _run_batch(self, requests: Sequence[DecodeRequest]
                         ) -> list[Outcome]:
        model = model_of(requests[0].decoder)
        engine, waits = self.models[model], self.batcher.taken_waits
        started, audio_s = self.clock(), batch_audio_s(requests)
        span = tracing.start_batch(
            self.tracer, [span_of(r) for r in requests], model, audio_s)
        try:
            await self._until_ready(engine)
            outcomes = await self._isolating(engine, requests)
        except ModelNotReadyError as error:
            tracing.fail(span, error)
            self._drop("model_not_ready", len(requests))
            outcomes = [error] * len(requests)
        finally:
            span.end()
        failed = sum(isinstance(o, BaseException) for o in outcomes)
        self._account(BatchRecord(
            model, len(requests), sum(r.final for r in requests),
            audio_s, max(waits, default=0.0),
            self.clock() - started, failed), waits)
        return outcomes
    # --8<-- [end:cross_stream_batch]

    async def _until_ready(self, model: Recognizer) -> None:
        deadline = self.clock() + self.config.ready_wait_s
        while not model.ready:
            if self.clock() >= deadline:
                raise ModelNotReadyError(
                    f"model not ready after {self.config.ready_wait_s:g}"
                    " s: retry in 5 s")
            await asyncio.sleep(0.05)

    async def _isolating(self, model: Recognizer,
                         requests: Sequence[DecodeRequest]
                         ) -> list[Outcome]:
        """Decode the batch; if it fails, decode each half apart, so
        that only the request at fault fails. (An engine must change
        no state for a batch it refuses: the mock checks first.)"""
        try:
            return list(await model.decode(requests))
        except Exception as error:
            if len(requests) == 1:
                log.warning("event=request_failed model=%s error=%r",
                            model_of(requests[0].decoder), error)
                self._drop("item_failed")
                return [error]
            half = len(requests) // 2
            return [*await self._isolating(model, requests[:half]),
                    *await self._isolating(model, requests[half:])]

    def _account(self, record: BatchRecord, waits: list[float]) -> None:
        self.batches += 1
        now = self.clock()
        for wait in waits:
            self.waits.add(now, wait)
        if self.metrics is not None:
            metrics = self.metrics
            for wait in waits:
                metrics.queue_wait.observe(wait)
            metrics.batch_size.labels(record.model).observe(record.size)
            metrics.batch_seconds.labels(record.model).observe(record.run_s)
            if record.audio_s > 0:
                metrics.rtf.labels(record.model).observe(
                    record.run_s / record.audio_s)
        self.on_batch(record)

    def _drop(self, reason: str, count: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.drops.labels(reason).inc(count)


def span_of(request: DecodeRequest) -> Span | None:
    tag = request.decoder.tag
    span = tag.span if isinstance(tag, UtteranceTag) else None
    return span if isinstance(span, Span) else None
