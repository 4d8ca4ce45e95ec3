"""The composition root: one pipeline, one API, one `create_app()`.

Chapter 7. `create_app` is the one place that picks concrete parts:
chapter 6's models and cross-stream scheduler on chapter 3's device
model, the transcriber that feeds files through chapter 4's session,
the admission bounds, the operation store, the API keys; then it
mounts the OpenAI-compatible routes and the AIP-styled ones, the
edge middleware (keys, body limit), the error handlers that render
every `ApiError` in its route's shape, `/readyz`, `/healthz` and
`/metrics`. Tests pass their own parts (a store in memory, an engine
that fails on cue, a fixed date).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from opentelemetry.trace import Tracer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
)
from starlette.exceptions import HTTPException

from ch03_gpu.dcgm import DcgmMetrics
from ch03_gpu.device import Accelerator
from ch04_streaming.app import build_device, vad_config
from ch04_streaming.auth import KeyCheck, load_api_keys
from ch04_streaming.engine import Recognizer
from ch06_pipeline.app import build_models
from ch06_pipeline.degradation import Level, QueueWaits
from ch06_pipeline.pipeline_metrics import PipelineMetrics
from ch06_pipeline.pipeline_scheduler import PipelineScheduler
from ch06_pipeline.tracing import build_tracing
from ch07_api.admission import Admission
from ch07_api.aip_routes import SHAPES, AipResources, aip_router
from ch07_api.aip_schemas import (
    CreateTranscriptRequest,
    OperationV1,
    OperationV2,
    TranscriptV1,
    TranscriptV2,
)
from ch07_api.api_metrics import ApiMetrics
from ch07_api.database import open_engine
from ch07_api.edge import LimitBody, RequireApiKey, error_response
from ch07_api.errors import (
    ApiError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    invalid_request,
)
from ch07_api.openai_routes import openai_router
from ch07_api.openai_schemas import (
    TranscriptionJson,
    TranscriptionVerboseJson,
)
from ch07_api.openapi_schemas import with_models
from ch07_api.operations import OperationRunner
from ch07_api.page_tokens import PageTokens
from ch07_api.response_counter import CountResponses
from ch07_api.service import SpeechApi, today_utc
from ch07_api.settings import ApiSettings
from ch07_api.sse import ClientGoneError
from ch07_api.store import Store
from ch07_api.transcriber import Transcriber

log = logging.getLogger("ch07_api")

BATCH_WAIT_S = 24 * 3600.0
CLIENT_CLOSED_REQUEST = 499
AIP_UPLOAD_PATHS = ("/v1/transcripts", "/v2/transcripts")


@dataclass(frozen=True)
class Parts:
    """What a test may pass instead of the concrete parts."""

    keys: KeyCheck | None = None  # chapter 9 passes its credentials
    models: Mapping[str, Recognizer] | None = None
    device: Accelerator | None = None
    tracer: Tracer | None = None
    store: Store | None = None
    today: Callable[[], date] = today_utc


def create_app(settings: ApiSettings, parts: Parts = Parts()) -> FastAPI:
    keys, dev_key = (parts.keys, None) if parts.keys else load_api_keys(
        settings.env)
    pipeline = settings.pipeline
    device = parts.device or build_device(pipeline.speech)
    models = parts.models or build_models(pipeline, device)
    tracer = parts.tracer or build_tracing(settings.env, "ch07_api").tracer
    scheduler = PipelineScheduler(
        models, pipeline.batching(), lambda: Level.NORMAL,
        QueueWaits(pipeline.thresholds().window_s), tracer)
    registry = CollectorRegistry()
    scheduler.metrics = PipelineMetrics(
        registry, lambda: scheduler.batcher.waiting, lambda: Level.NORMAL)
    registry.register(DcgmMetrics(device))
    metrics = ApiMetrics(registry)
    api = SpeechApi(
        settings, models, build_transcriber(scheduler, settings),
        Admission(settings.max_active, settings.max_waiting,
                  settings.max_wait_s),
        # Operations wait as long as they must: their clients poll.
        Admission(settings.max_operations,
                  settings.max_pending_operations, BATCH_WAIT_S),
        metrics, tracer, parts.today)
    store = parts.store or Store(open_engine(settings.database_url))
    store.create_schema()
    runner = OperationRunner(api, store, settings.max_pending_operations)
    resources = AipResources(api, runner,
                             PageTokens(store.secret("page_tokens")))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner.recover()
        scheduler.start()
        loading = asyncio.create_task(start_models(models))
        yield
        loading.cancel()
        await runner.shutdown()
        await scheduler.close()
        for model in models.values():
            await model.stop()

    app = FastAPI(title="Speech API (chapter 7)", version="1.0.0",
                  lifespan=lifespan,
                  description="OpenAI-compatible and AIP-styled"
                  " transcription on chapter 6's pipeline.")
    app.state.api = api
    app.state.dev_key = dev_key
    app.include_router(openai_router(api))
    for shapes in SHAPES.values():
        app.include_router(aip_router(resources, shapes))
    app.openapi = with_models(  # type: ignore[method-assign]
        app, [CreateTranscriptRequest],
        [TranscriptionJson, TranscriptionVerboseJson, TranscriptV1,
         TranscriptV2, OperationV1, OperationV2])
    add_probes(app, api, registry)
    add_error_handlers(app)
    app.add_middleware(LimitBody, max_bytes=settings.max_upload_bytes,
                       base64_paths=AIP_UPLOAD_PATHS)
    app.add_middleware(RequireApiKey, keys=keys)
    app.add_middleware(CountResponses, metrics=metrics)
    return app


def build_transcriber(scheduler: PipelineScheduler, settings: ApiSettings
                   ) -> Transcriber:
    return Transcriber(scheduler, vad_config(settings.pipeline.speech),
                       settings.pipeline.speech.max_pending_audio_s)


async def start_models(models: Mapping[str, Recognizer]) -> None:
    """Load each model; `/readyz` says ready once all are."""
    for model in models.values():
        await model.start()
    log.info("event=models_ready models=%s", ",".join(models))


def add_probes(app: FastAPI, api: SpeechApi,
               registry: CollectorRegistry) -> None:
    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        if api.ready:
            return JSONResponse({"type": "Ready", "ready": True})
        return JSONResponse({"type": "NotReady", "ready": False,
                             "reason": "models loading"}, 503,
                            {"Retry-After": "1"})

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"type": "Alive"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry),
                        media_type=CONTENT_TYPE_LATEST)


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return error_response(error, request.url.path)

    @app.exception_handler(ClientGoneError)
    async def gone(request: Request, error: Exception) -> Response:
        # Nobody reads this; nginx's 499 names it in the metrics.
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return error_response(invalid_request(error.errors(), skip=1),
                              request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        known: ApiError
        if error.status_code == 404:
            known = NotFoundError(f"no route {request.url.path}")
        elif error.status_code == 405:
            known = InvalidRequestError(
                f"{request.method} is not allowed on {request.url.path}")
        else:
            known = InvalidRequestError(str(error.detail))
        return error_response(known, request.url.path)

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> Response:
        log.exception("event=internal_error path=%s", request.url.path)
        return error_response(InternalError("internal error"),
                              request.url.path)
