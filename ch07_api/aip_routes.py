"""AIP-styled routes: transcripts as resources, operations for long work.

Chapter 7, "Resource-oriented API design" and "Long-running
operations". Google's API Improvement Proposals, as routes: create a
transcript (AIP-133), get one (AIP-131), list them a page at a time
with opaque, signed tokens (AIP-132, AIP-158); operations for work too
long for a request (AIP-151), with get, list, `:cancel` (an AIP-136
custom method) and delete. How a create is answered is the chapter's
decision (`decision.py`): the transcript itself for short audio, an SSE
stream when the client accepts one, an operation beyond 30 s. Errors are
`google.rpc.Status` JSON. The same routes are mounted as `/v1` and
`/v2`, which differ in one breaking change (`aip_schemas.py`); `/v1`'s
answers carry `Deprecation` and `Sunset` headers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.responses import StreamingResponse

from ch07_api.aip_schemas import (
    CreateTranscriptRequest,
    ListOperationsV1,
    ListOperationsV2,
    ListTranscriptsV1,
    ListTranscriptsV2,
    OperationV1,
    OperationV2,
    RpcError,
    TranscriptV1,
    TranscriptV2,
    dump,
    metadata_of,
    transcript_v1,
    transcript_v2,
)
from ch07_api.audio_input import decode_upload
from ch07_api.decision import ApiMode, choose_mode
from ch07_api.edge import require_media_type
from ch07_api.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    invalid_request,
)
from ch07_api.model_versions import deprecation_headers, model_headers
from ch07_api.openapi_schemas import SSE_EVENT
from ch07_api.operations import OperationRunner
from ch07_api.page_tokens import PageTokens
from ch07_api.service import SpeechApi, trace_context
from ch07_api.sse import (
    SSE_HEADERS,
    client_gone,
    sse_stream,
    unless_client_gone,
)
from ch07_api.store import (
    OperationRecord,
    Store,
    TranscriptRecord,
    new_id,
)
from ch07_api.stream_styles import ResponsesStyle
from ch07_api.transcriber import OnSegment, Transcript
from ch07_api.transcription_request import LANGUAGES

V1_DEPRECATED = date(2026, 6, 1)
V1_SUNSET = date(2027, 12, 31)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000  # larger requests are coerced down (AIP-158)
ID_PATTERN = r"^[a-z][a-z0-9-]{2,62}$"  # AIP-122 resource IDs
Row = TypeVar("Row", TranscriptRecord, OperationRecord)


def ref(model: type[BaseModel]) -> dict[str, str]:
    """A reference to a schema `openapi_schemas.with_models` adds."""
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def rpc_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": RpcError} for status in statuses}


@dataclass(frozen=True)
class Shapes:
    """How one API version renders its resources."""

    version: str
    transcript: Callable[[TranscriptRecord, bool], BaseModel]
    transcript_model: type[BaseModel]
    operation: type[OperationV1] | type[OperationV2]
    transcripts_page: type[ListTranscriptsV1] | type[ListTranscriptsV2]
    operations_page: type[ListOperationsV1] | type[ListOperationsV2]
    deprecated: bool


SHAPES = {
    "v1": Shapes("v1", transcript_v1, TranscriptV1, OperationV1,
                 ListTranscriptsV1, ListOperationsV1, deprecated=True),
    "v2": Shapes("v2", transcript_v2, TranscriptV2, OperationV2,
                 ListTranscriptsV2, ListOperationsV2, deprecated=False),
}


@dataclass
class AipResources:
    """What the AIP routes of every version share."""

    api: SpeechApi
    runner: OperationRunner
    tokens: PageTokens

    @property
    def store(self) -> Store:
        return self.runner.store

    async def transcript(self, transcript_id: str) -> TranscriptRecord:
        record = await asyncio.to_thread(self.store.transcript,
                                         transcript_id)
        if record is None:
            raise NotFoundError(f"transcripts/{transcript_id} not found",
                                "name")
        return record

    async def page(self, collection: str,
                   read: Callable[[int, int], list[Row]],
                   page_size: int, page_token: str
                   ) -> tuple[list[Row], str]:
        """One page of a collection, and the token of the next ("" at
        the end): one row more than the page is read to know."""
        after = (self.tokens.read(collection, page_token)
                 if page_token else 0)
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        rows = await asyncio.to_thread(read, after, size + 1)
        token = (self.tokens.issue(collection, rows[size - 1].seq)
                 if len(rows) > size else "")
        return rows[:size], token

    async def operation(self, record: OperationRecord,
                        shapes: Shapes) -> BaseModel:
        response = None
        if record.done and record.error is None and record.transcript_id:
            stored = await asyncio.to_thread(self.store.transcript,
                                             record.transcript_id)
            if stored is not None:
                response = shapes.transcript(stored, True)
        return shapes.operation.model_validate({
            "name": f"operations/{record.id}", "done": record.done,
            "metadata": metadata_of(record, shapes.version),
            "response": response, "error": record.error})


async def read_body(request: Request) -> CreateTranscriptRequest:
    """The JSON body, parsed once into its type; 415 if not JSON."""
    require_media_type(request.headers, "application/json", "")
    try:
        return CreateTranscriptRequest.model_validate_json(
            await request.body())
    except ValidationError as error:
        raise invalid_request(error.errors()) from None


def file_of(body: CreateTranscriptRequest) -> bytes:
    try:
        return base64.b64decode(body.audio.content, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError("audio.content is not valid base64",
                                  "audio.content") from None


def accepts_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def aip_router(resources: AipResources, shapes: Shapes) -> APIRouter:
    api, runner, v = resources.api, resources.runner, shapes.version
    router = APIRouter(tags=[f"AIP {v}"])

    def answer(body: dict[str, Any], path: str,
               extra: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(body, headers={**headers_for(shapes, path),
                                           **(extra or {})})

    @router.post(
        f"/{v}/transcripts", summary="Create a transcript (AIP-133)",
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": ref(CreateTranscriptRequest)}}}},
        responses={200: {
            "description": "The transcript (short audio), or an"
            " operation (audio over 30 s), or an SSE stream (Accept:"
            " text/event-stream, 1 to 30 s of audio)",
            "content": {"application/json": {"schema": {"anyOf": [
                ref(shapes.transcript_model), ref(shapes.operation)]}},
                "text/event-stream": {"schema": SSE_EVENT}}},
            **rpc_errors(400, 401, 404, 409, 413, 415, 429, 500, 503,
                         504)})
    async def create_transcript(
            request: Request,
            transcript_id: str | None = Query(None, pattern=ID_PATTERN),
    ) -> Response:
        body = await read_body(request)
        version = api.model(body.model, v)
        if body.language_code not in LANGUAGES:
            raise InvalidRequestError(
                f"language_code '{body.language_code}' is not supported",
                "language_code")
        api.check_ready(version)
        audio = await decode_upload(file_of(body), api.settings.max_audio_s,
                                    "audio.content")
        name = transcript_id or new_id()
        taken = await asyncio.to_thread(resources.store.transcript_exists,
                                        name)
        if taken:
            raise ConflictError(f"transcripts/{name} exists already",
                                "transcript_id")
        headers = model_headers(version)
        mode = choose_mode(audio.duration_s, accepts_stream(request))
        if mode is ApiMode.LONG_RUNNING:
            started = await runner.start(
                audio.samples, version, v, name, body.language_code,
                trace_context(request.headers))
            return answer(dump(await resources.operation(started, shapes)),
                          request.url.path, headers)

        async def transcribe(on_segment: OnSegment) -> Transcript:
            transcript = await api.transcribe(
                audio.samples, version, on_segment,
                headers=trace_context(request.headers))
            await asyncio.to_thread(
                resources.store.add_transcript, name, version.name,
                body.language_code, transcript)
            return transcript

        if mode is ApiMode.STREAMING:
            api.admission.refuse_if_full()  # a 429, while it can be one
            style = ResponsesStyle(version.name, id=f"transcripts/{name}")
            frames = sse_stream(transcribe, style,
                                partial(client_gone, request, api.metrics),
                                api.settings.keepalive_s)
            return StreamingResponse(
                frames, media_type="text/event-stream",
                headers={**SSE_HEADERS, **headers,
                         **headers_for(shapes, request.url.path)})
        await unless_client_gone(transcribe(lambda segment: None),
                                 request, api.metrics)
        stored = await resources.transcript(name)
        return answer(dump(shapes.transcript(stored, False)),
                      request.url.path, headers)

    @router.get(f"/{v}/transcripts/{{transcript_id}}",
                summary="Get a transcript (AIP-131)",
                responses={200: {"model": shapes.transcript_model},
                           **rpc_errors(401, 404)})
    async def get_transcript(request: Request,
                             transcript_id: str) -> JSONResponse:
        record = await resources.transcript(transcript_id)
        return answer(dump(shapes.transcript(record, False)),
                      request.url.path)

    @router.get(f"/{v}/transcripts",
                summary="List transcripts (AIP-132)",
                responses={200: {"model": shapes.transcripts_page},
                           **rpc_errors(400, 401)})
    async def list_transcripts(
            request: Request, page_size: int = Query(0, ge=0),
            page_token: str = "") -> JSONResponse:
        rows, token = await resources.page(
            "transcripts", resources.store.list_transcripts, page_size,
            page_token)
        page = shapes.transcripts_page.model_validate({
            "transcripts": [shapes.transcript(r, False) for r in rows],
            "next_page_token": token})
        return answer(dump(page), request.url.path)

    @router.get(f"/{v}/operations/{{operation_id}}",
                summary="Get an operation (AIP-151)",
                responses={200: {"model": shapes.operation},
                           **rpc_errors(401, 404)})
    async def get_operation(request: Request,
                            operation_id: str) -> JSONResponse:
        record = await runner.get(operation_id)
        return answer(dump(await resources.operation(record, shapes)),
                      request.url.path)

    @router.get(f"/{v}/operations", summary="List operations (AIP-151)",
                responses={200: {"model": shapes.operations_page},
                           **rpc_errors(400, 401)})
    async def list_operations(
            request: Request, page_size: int = Query(0, ge=0),
            page_token: str = "") -> JSONResponse:
        rows, token = await resources.page(
            "operations", resources.store.list_operations, page_size,
            page_token)
        page = shapes.operations_page.model_validate({
            "operations": [await resources.operation(r, shapes)
                           for r in rows],
            "next_page_token": token})
        return answer(dump(page), request.url.path)

    @router.post(f"/{v}/operations/{{operation_id}}:cancel",
                 summary="Cancel an operation (AIP-151, AIP-136)",
                 responses={200: {"model": shapes.operation},
                            **rpc_errors(400, 401, 404)})
    async def cancel_operation(request: Request,
                               operation_id: str) -> JSONResponse:
        record = await runner.cancel(operation_id)
        return answer(dump(await resources.operation(record, shapes)),
                      request.url.path)

    @router.delete(f"/{v}/operations/{{operation_id}}",
                   summary="Delete an operation's record (AIP-151)",
                   responses={200: {"description": "google.protobuf"
                                    ".Empty", "content": {
                                        "application/json": {"schema": {
                                            "type": "object"}}}},
                              **rpc_errors(400, 401, 404)})
    async def delete_operation(request: Request,
                               operation_id: str) -> JSONResponse:
        await runner.delete(operation_id)
        return answer({}, request.url.path)

    return router


def headers_for(shapes: Shapes, path: str) -> dict[str, str]:
    """`Deprecation` and `Sunset` on a deprecated version's answers,
    with a link to the same route in the version that replaces it."""
    if not shapes.deprecated:
        return {}
    successor = "/v2" + path.removeprefix(f"/{shapes.version}")
    return deprecation_headers(V1_DEPRECATED, V1_SUNSET, successor)
