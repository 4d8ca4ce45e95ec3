"""OpenAI-compatible routes: `/v1/audio/transcriptions`, `/v1/models`.

Chapter 7, "Streaming response design" and "SDK and developer
experience". The transcription route takes OpenAI's multipart form and
answers as OpenAI does: `json`, `text` or `verbose_json` at once, or,
with `stream=true`, an SSE stream (OpenAI's transcription events, or
the Responses or Chat style the chapter compares). OpenAI's own Python
SDK, pointed here with `base_url`, works unchanged; every error has
OpenAI's shape, so the SDK raises the matching exception.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.responses import StreamingResponse

from ch07_api.audio_input import decode_upload
from ch07_api.edge import require_media_type
from ch07_api.errors import ApiError, InvalidRequestError
from ch07_api.model_versions import MODEL_VERSIONS, model_headers
from ch07_api.openai_schemas import (
    ModelList,
    ModelObject,
    OpenAIError,
    TranscriptionJson,
    TranscriptionVerboseJson,
    usage_of,
    verbose_of,
)
from ch07_api.openapi_schemas import SSE_EVENT
from ch07_api.service import SpeechApi, trace_context
from ch07_api.sse import (
    SSE_HEADERS,
    client_gone,
    sse_stream,
    unless_client_gone,
)
from ch07_api.stream_styles import StreamStyle, style_for
from ch07_api.transcriber import OnSegment, Segment, Transcript
from ch07_api.transcription_request import (
    ResponseFormat,
    TranscriptionRequest,
    parse_transcription_form,
)

MAX_FORM_FIELDS = 32
MODELS_CREATED = 1767225600  # 2026-01-01, when the catalogue began


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": OpenAIError} for status in statuses}


FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file", "model"],
    "additionalProperties": False,
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "WAV, FLAC, Ogg (Vorbis, Opus) or MP3"},
        "model": {"type": "string", "minLength": 1, "example": "mock-asr"},
        "language": {"type": "string", "enum": ["en"]},
        "prompt": {"type": "string"},
        "response_format": {"type": "string",
                            "enum": ["json", "text", "verbose_json"]},
        "stream": {"type": "boolean"},
        "stream_format": {"type": "string",
                          "enum": ["transcript", "responses", "chat"]},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
TRANSCRIPTION_OPENAPI: dict[str, Any] = {
    "requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": FORM_SCHEMA}}},
}
TRANSCRIPTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The transcript; an SSE stream with stream=true",
          "content": {
              "application/json": {"schema": {"anyOf": [
                  {"$ref": "#/components/schemas/TranscriptionJson"},
                  {"$ref":
                   "#/components/schemas/TranscriptionVerboseJson"}]}},
              "text/plain": {"schema": {"type": "string"}},
              "text/event-stream": {"schema": SSE_EVENT}}},
    **errors(400, 401, 404, 413, 415, 429, 500, 503, 504),
}


def openai_router(api: SpeechApi) -> APIRouter:
    router = APIRouter(tags=["OpenAI-compatible"])

    @router.post("/v1/audio/transcriptions",
                 openapi_extra=TRANSCRIPTION_OPENAPI,
                 responses=TRANSCRIPTION_RESPONSES,
                 response_class=JSONResponse,
                 summary="Transcribe an audio file (OpenAI-compatible)")
    async def create_transcription(request: Request) -> Response:
        received = time.perf_counter()
        form = await read_form(request)
        try:
            parsed = parse_transcription_form(form)
            version = api.model(parsed.model, "v1")
            api.check_ready(version)
            audio = await decode_upload(await parsed.file.read(),
                                        api.settings.max_audio_s)
        finally:
            await form.close()
        headers = model_headers(version)

        def run(on_segment: OnSegment,
                on_start: Callable[[], None] = lambda: None,
                ) -> Awaitable[Transcript]:
            return api.transcribe(audio.samples, version, on_segment,
                                  headers=trace_context(request.headers),
                                  on_engine_start=on_start)

        if parsed.stream:
            # Refused now, a stream is a 429 with Retry-After; once its
            # 200 is sent, only an error event could say so.
            api.admission.refuse_if_full()
            return stream_response(api, parsed, version.name, run,
                                   request, received, headers)
        transcript = await unless_client_gone(
            run(lambda segment: None), request, api.metrics)
        return render(transcript, parsed, headers)

    @router.get("/v1/models", response_model=ModelList,
                responses=errors(401), summary="List the models")
    async def list_models() -> ModelList:
        today = api.today()
        return ModelList(data=[
            ModelObject(id=v.name, created=MODELS_CREATED,
                        owned_by="speech-api")
            for v in MODEL_VERSIONS
            if v.sunset is None or today <= v.sunset])

    @router.get("/v1/models/{model}", response_model=ModelObject,
                responses=errors(401, 404), summary="Describe a model")
    async def get_model(model: str) -> JSONResponse:
        version = api.model(model, "v1", param="model")
        body = ModelObject(id=version.name, created=MODELS_CREATED,
                           owned_by="speech-api")
        return JSONResponse(body.model_dump(),
                            headers=model_headers(version))

    return router


async def read_form(request: Request) -> Any:
    require_media_type(request.headers, "multipart/form-data",
                       ": send the audio as a multipart file part named"
                       " 'file'")
    try:
        return await request.form(max_files=1, max_fields=MAX_FORM_FIELDS,
                                  max_part_size=64 * 1024)
    except ValueError as error:  # starlette's own malformed-form errors
        raise InvalidRequestError(f"malformed multipart body: {error}"
                                  ) from None


def render(transcript: Transcript, parsed: TranscriptionRequest,
           headers: dict[str, str]) -> Response:
    if parsed.response_format is ResponseFormat.TEXT:
        return PlainTextResponse(transcript.text + "\n", headers=headers)
    if parsed.response_format is ResponseFormat.VERBOSE_JSON:
        verbose: TranscriptionVerboseJson = verbose_of(
            transcript, parsed.language)
        return JSONResponse(verbose.model_dump(), headers=headers)
    body = TranscriptionJson(text=transcript.text,
                             usage=usage_of(transcript))
    return JSONResponse(body.model_dump(), headers=headers)


Run = Callable[[OnSegment, Callable[[], None]], Awaitable[Transcript]]


@dataclass
class EngineTimed:
    """A stream style whose first event is preceded by an SSE comment,
    `: engine-ms=N`: the engine's time from its start to the first
    segment. Clients ignore comments; a benchmark subtracts it from the
    time to the first event to find what the API layer added."""

    style: StreamStyle
    started: float = 0.0
    engine_ms: float | None = None

    def start(self) -> None:
        self.started = time.perf_counter()

    def first_segment(self) -> None:
        self.engine_ms = (time.perf_counter() - self.started) * 1000

    def opening(self) -> list[str]:
        return self.style.opening()

    def segment(self, segment: Segment) -> str:
        note = ""
        if segment.id == 0 and self.engine_ms is not None:
            note = f": engine-ms={self.engine_ms:.3f}\n\n"
        return note + self.style.segment(segment)

    def closing(self, transcript: Transcript) -> str:
        return self.style.closing(transcript)

    def failure(self, error: ApiError) -> str:
        return self.style.failure(error)


def stream_response(api: SpeechApi, parsed: TranscriptionRequest,
                    model: str, run: Run, request: Request,
                    received: float, headers: dict[str, str]
                    ) -> StreamingResponse:
    style = EngineTimed(style_for(parsed.stream_format, model))
    first_event = api.metrics.first_event.labels(
        parsed.stream_format.value)
    between = api.metrics.inter_event.labels(parsed.stream_format.value)
    last_at = received

    def on_segment(segment: Segment, emit: OnSegment) -> None:
        nonlocal last_at
        now = time.perf_counter()
        if style.engine_ms is None:
            style.first_segment()
            first_event.observe(now - received)
        else:  # the gap a reader of the stream waits between segments
            between.observe(now - last_at)
        last_at = now
        emit(segment)

    def transcribe(emit: OnSegment) -> Awaitable[Transcript]:
        return run(lambda segment: on_segment(segment, emit), style.start)

    frames = sse_stream(transcribe, style,
                        partial(client_gone, request, api.metrics),
                        api.settings.keepalive_s)
    return StreamingResponse(frames, media_type="text/event-stream",
                             headers={**SSE_HEADERS, **headers})
