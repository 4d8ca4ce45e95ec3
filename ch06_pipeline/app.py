"""The composition root: many streams, one accelerator, one pipeline.

Chapter 6, "Handling multiple concurrent streams per server instance".
`build_pipeline` is the one place that picks concrete parts: chapter
3's accelerator model, the mock engine in two sizes (the full model and
the cheaper fallback) sharing one matcher worker, the cross-stream
scheduler in front of them, the degradation policy, the tracer and the
metrics. Chapter 4's WebSocket server and chapter 5's gRPC server are
then built around that scheduler, through their own seams (scheduler,
hooks, cadence), with no copy of their code: every stream of either
transport lands in the same queue and shares the same batches.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.trace import Tracer

from ch03_gpu.device import Accelerator
from ch04_streaming.app import build_device, build_server, lexicon_cache
from ch04_streaming.auth import ApiKeys, load_api_keys
from ch04_streaming.engine import (
    LocalMatching,
    Matching,
    MockRecognizer,
    NullRecognizer,
    Recognizer,
    load_lexicon,
)
from ch04_streaming.matcher_process import MatcherProcess
from ch04_streaming.server import SpeechServer
from ch04_streaming.word_errors import WordErrorInjector
from ch05_protocols.app import build_grpc_server
from ch05_protocols.grpc_server import GrpcSpeechServer
from ch05_protocols.settings import GrpcSettings
from ch05_protocols.ws_dialects import chapter5_dialects
from ch06_pipeline.batched_matcher import bank_worker
from ch06_pipeline.degradation import (
    DegradationPolicy,
    Level,
    QueueWaits,
    log_change,
)
from ch06_pipeline.pipeline_metrics import PipelineMetrics
from ch06_pipeline.pipeline_scheduler import (
    CHEAPER,
    FULL,
    PipelineScheduler,
)
from ch06_pipeline.service_level import LevelCadence, PipelineHooks
from ch06_pipeline.settings import PipelineSettings
from ch06_pipeline.tracing import Tracing, build_tracing

log = logging.getLogger("ch06_pipeline")

EVALUATE_EVERY_S = 0.25  # how often the degradation level is decided


def build_matching(settings: PipelineSettings) -> Matching:
    """The mock's matcher, in a worker process, batched or not."""
    speech = settings.speech
    cache = lexicon_cache(speech)
    if speech.matcher_runs_on == "loop":
        return LocalMatching(load_lexicon(speech.manifest, cache))
    if settings.matcher == "batched":
        return MatcherProcess(speech.manifest, cache_dir=cache,
                              state=bank_worker)
    return MatcherProcess(speech.manifest, cache_dir=cache)


def build_models(settings: PipelineSettings, device: Accelerator
                 ) -> dict[str, Recognizer]:
    """The full model and its cheaper fallback, on one device and one
    matcher: the fallback costs less device time and hears worse."""
    speech = settings.speech
    if speech.recognizer == "null":
        return {FULL: NullRecognizer(device)}
    matching = build_matching(settings)
    full = MockRecognizer(
        matching, device,
        WordErrorInjector(seed=speech.error_seed,
                          substitution=speech.substitution_rate,
                          deletion=speech.deletion_rate,
                          insertion=speech.insertion_rate),
        warmup_decodes=speech.warmup_decodes)
    cheaper = MockRecognizer(
        matching, device,
        WordErrorInjector(seed=speech.error_seed + 1,
                          substitution=settings.cheaper_substitution_rate),
        compute_scale=settings.cheaper_compute_scale)
    return {FULL: full, CHEAPER: cheaper}


@dataclass
class Pipeline:
    """Both servers, the scheduler they share, and the level policy."""

    speech: SpeechServer
    grpc: GrpcSpeechServer
    scheduler: PipelineScheduler
    models: Mapping[str, Recognizer]
    policy: DegradationPolicy | None  # None: degradation off
    waits: QueueWaits
    dev_key: str | None
    tracing: Tracing
    _ticker: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def level(self) -> Level:
        return self.policy.level if self.policy else Level.NORMAL

    async def start(self, host: str, port: int, grpc_port: int) -> None:
        self.scheduler.start()
        await self.speech.start(host, port)
        await self.grpc.start(host, grpc_port)
        self._ticker = asyncio.create_task(self._evaluate_levels())

    async def start_models(self) -> None:
        """Load the models (the full one first: /readyz waits for it)."""
        for model in self.models.values():
            await model.start()

    async def _evaluate_levels(self) -> None:
        if self.policy is None:
            return
        while True:
            await asyncio.sleep(EVALUATE_EVERY_S)
            self.policy.evaluate(self.waits.p95(time.monotonic()))

    async def stop(self) -> None:
        """Stop admitting; finish open utterances on both transports;
        then the scheduler, then the models."""
        if self._ticker is not None:
            self._ticker.cancel()
        await asyncio.gather(self.speech.shutdown(), self.grpc.shutdown())
        await self.scheduler.close()
        for model in self.models.values():
            await model.stop()
        # Off the loop: the last export is a blocking HTTP request.
        await asyncio.to_thread(self.tracing.shutdown)


def build_pipeline(settings: PipelineSettings,
                   keys: ApiKeys | None = None,
                   tracer: Tracer | None = None,
                   models: Mapping[str, Recognizer] | None = None,
                   device: Accelerator | None = None) -> Pipeline:
    dev_key = None
    if keys is None:
        keys, dev_key = load_api_keys(settings.env)
    device = device or build_device(settings.speech)
    models = models or build_models(settings, device)
    tracing = Tracing(tracer) if tracer else build_tracing(settings.env)
    tracer = tracing.tracer
    waits = QueueWaits(settings.thresholds().window_s)
    policy = None
    if settings.degradation == "on":
        policy = DegradationPolicy(settings.thresholds(), time.monotonic)
    def pipeline_level() -> Level:
        return policy.level if policy else Level.NORMAL

    scheduler = PipelineScheduler(models, settings.batching(),
                                  pipeline_level, waits, tracer)
    cadence = LevelCadence(pipeline_level)
    hooks = [PipelineHooks(pipeline_level, tracer, "websocket", 503),
             PipelineHooks(pipeline_level, tracer, "grpc", 429)]
    built = build_server(settings.speech, keys, hooks[0], scheduler,
                         device, more_dialects=chapter5_dialects(),
                         recognizer=models[FULL], cadence=cadence)
    grpc_built = build_grpc_server(
        GrpcSettings(host=settings.host, port=settings.grpc_port,
                     max_streams=settings.max_grpc_streams,
                     shutdown_grace_s=settings.speech.shutdown_grace_s,
                     speech=settings.speech, env=settings.env),
        keys, hooks[1], recognizer=models[FULL], scheduler=scheduler,
        cadence=cadence)
    metrics = PipelineMetrics(built.server.metrics.registry,
                              lambda: scheduler.batcher.waiting,
                              pipeline_level)
    scheduler.metrics = metrics
    for transport in hooks:
        transport.metrics = metrics
    if policy is not None:
        def changed(old: Level, new: Level, wait_s: float) -> None:
            log_change(old, new, wait_s)
            metrics.level_changes.labels(new.label).inc()
        policy.on_change = changed
    return Pipeline(built.server, grpc_built.server, scheduler, models,
                    policy, waits, dev_key, tracing)


async def serve(settings: PipelineSettings) -> int:
    """`python -m ch06_pipeline`: serve until SIGTERM or Ctrl-C."""
    pipeline = build_pipeline(settings)
    await pipeline.start(settings.host, settings.port, settings.grpc_port)
    url = f"http://{settings.host}:{pipeline.speech.port}"
    if pipeline.dev_key:
        print(f"SPEECH_API_KEYS is not set; development key: "
              f"{pipeline.dev_key}", flush=True)
    # The port line last: tools read what a service prints up to it.
    print(f"gRPC streaming on grpc://{settings.host}:{pipeline.grpc.port}"
          " (speech.v1.Speech)", flush=True)
    print(f"listening on {url} (Deepgram /v1/listen, AssemblyAI /v3/ws,"
          " /ws/binary, /ws/base64, /readyz, /metrics)", flush=True)
    batching = settings.batching()
    log.info("event=listening profile=%s max_batch=%d max_wait_ms=%g"
             " matcher=%s", settings.profile, batching.max_batch_size,
             settings.max_wait_ms, settings.matcher)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    gc.freeze()  # start-up objects out of the collector's full passes
    loading = asyncio.create_task(pipeline.start_models())
    await stop.wait()
    log.info("event=draining")
    loading.cancel()
    await pipeline.stop()
    log.info("event=stopped batches=%d", pipeline.scheduler.batches)
    return 0

