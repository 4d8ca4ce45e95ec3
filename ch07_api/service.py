"""What every route shares: the model lookup, admission, the engine.

Chapter 7. A route parses its request and renders its answer; what
happens between is the same for every API style, and lives here: the
requested model is resolved to a dated version (or 404), an unready
model is refused at once with 503 and `Retry-After` (no request is held
while a model loads), a slot is taken under the admission bounds (or
429), and the transcription runs under its deadline (or 504).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np
from opentelemetry import trace
from opentelemetry.trace import Tracer

from ch04_streaming.audio import MODEL_RATE
from ch04_streaming.engine import Recognizer
from ch06_pipeline import tracing
from ch07_api.admission import Admission
from ch07_api.api_metrics import ApiMetrics
from ch07_api.errors import ModelNotFoundError, ModelNotReadyError
from ch07_api.model_versions import (
    ModelVersion,
    UnknownModelError,
    resolve_model,
)
from ch07_api.settings import ApiSettings
from ch07_api.transcriber import OnSegment, Transcriber, Transcript

TRACE_HEADERS = ("traceparent", "tracestate")


def trace_context(headers: Mapping[str, str]) -> dict[str, str]:
    """The W3C trace context of a request, nothing else of its headers
    (work that outlives the request keeps only this)."""
    return {name: headers[name] for name in TRACE_HEADERS
            if name in headers}


def today_utc() -> date:
    return datetime.now(UTC).date()


@dataclass
class SpeechApi:
    settings: ApiSettings
    engines: Mapping[str, Recognizer]  # the pipeline's, by name
    transcriber: Transcriber
    admission: Admission  # interactive requests
    batch_admission: Admission  # long-running operations
    metrics: ApiMetrics
    tracer: Tracer = field(default_factory=trace.NoOpTracer)
    today: Callable[[], date] = today_utc

    def model(self, requested: str, api_version: str,
              param: str = "model") -> ModelVersion:
        try:
            version = resolve_model(requested, api_version, self.today())
        except UnknownModelError as error:
            raise ModelNotFoundError(str(error), param) from None
        if version.engine not in self.engines:
            raise ModelNotFoundError(
                f"model '{requested}' is not loaded by this server", param)
        return version

    def check_ready(self, version: ModelVersion) -> None:
        if not self.engines[version.engine].ready:
            raise ModelNotReadyError(
                f"model '{version.name}' is loading; retry in a few"
                " seconds")

    @property
    def ready(self) -> bool:
        return all(engine.ready for engine in self.engines.values())

    async def transcribe(self, samples: np.ndarray, version: ModelVersion,
                         on_segment: OnSegment = lambda segment: None,
                         speed: float = 0.0,
                         on_progress: Callable[[float], None] = (
                             lambda seconds: None),
                         batch: bool = False,
                         headers: Mapping[str, str] | None = None,
                         on_engine_start: Callable[[], None] = (
                             lambda: None),
                         ) -> Transcript:
        """Transcribe under the admission bounds and the deadline, in a
        span of its own (a child of the client's `traceparent`, in
        `headers`) that chapter 6's utterance spans hang from."""
        self.check_ready(version)
        audio_s = samples.size / MODEL_RATE
        admission = self.batch_admission if batch else self.admission
        on_engine_start()  # the engine's time includes its queue
        async with admission.slot():
            self.metrics.active.inc()
            span = tracing.start_stream(self.tracer, headers or {},
                                        uuid.uuid4().hex, "http")
            outcome = "error"
            try:
                transcript = await self.transcriber.run(
                    samples, version.engine,
                    self.settings.timeout_for(audio_s), on_segment,
                    speed, on_progress)
                outcome = "ok"
                return transcript
            except asyncio.CancelledError:
                outcome = "cancelled"
                raise
            finally:
                self.metrics.active.dec()
                span.end(outcome)
