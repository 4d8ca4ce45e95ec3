"""The HTTP signalling of WebRTC calls, as OpenAI's Realtime API does it.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
WebRTC leaves signalling to the application; OpenAI's is one request.
`POST /v1/realtime/calls` takes the client's SDP offer, as the raw body
(`application/sdp`) or as the `sdp` field of a multipart form with an
optional `session` JSON field, and answers 201 with the SDP answer
(`application/sdp`) and a `Location` naming the call. Its Bearer key is
the service's API key (chapter 4's `SPEECH_API_KEYS`) or a client
secret from `POST /v1/realtime/client_secrets`, which only an API key
may ask for. The session asked for (in the form, or when the secret
was made) becomes the call's first event, `session.update`, where the
calls speak OpenAI's events; calls in Deepgram's dialect take none.
`GET /v1/realtime/calls/{id}` reports a call's negotiated
codec, jitter-buffer delay and lost audio. Every refusal is OpenAI's
error JSON, `{"error": {"message", "type", "param", "code"}}`, decided
before any media is set up; bodies are read up to a limit, and parsed
once, here.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from ch04_streaming.auth import KeyCheck, authorization_key
from ch05_protocols.client_secrets import (
    Check,
    ClientSecret,
    ClientSecretRequest,
    EphemeralKeys,
    SessionConfig,
    StoreFullError,
)
from ch05_protocols.rtc_calls import CallRefusedError, RtcCalls
from ch05_protocols.rtc_offer import OfferError, read_offer

CALLS = "/v1/realtime/calls"
CLIENT = "invalid_request_error"
MAX_SECRET_REQUEST_BYTES = 16 * 1024
SESSION_OBJECT = {"object": "realtime.transcription_session"}
NO_KEY = ("You didn't provide an API key. Send it in an Authorization"
          " header: Authorization: Bearer YOUR_KEY.")


class ApiError(Exception):
    """A refusal in OpenAI's error shape."""

    def __init__(self, status: int, message: str, code: str | None,
                 kind: str = CLIENT, param: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.kind, self.param = kind, param
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind,
                          "param": self.param, "code": self.code}}
        return JSONResponse(body, self.status, self.headers)


def unavailable(reason: str) -> ApiError:
    return ApiError(503, f"{reason}: retry in 1 s", "server_unavailable",
                    "server_error", headers={"Retry-After": "1"})


@dataclass(frozen=True)
class Credentials:
    """The service's API keys, and the client secrets made from them."""

    keys: KeyCheck
    secrets: EphemeralKeys

    def api_key(self, request: Request) -> None:
        """An API key, and only that: 401 otherwise."""
        key = bearer(request)
        if not self.keys.verify(key):
            raise unauthenticated(key)

    def caller(self, request: Request) -> SessionConfig | None:
        """An API key, or a live client secret (then its session)."""
        key = bearer(request)
        if not key:
            raise unauthenticated(key)
        if self.keys.verify(key):
            return None
        check, issued = self.secrets.check(key)
        if check is Check.EXPIRED:
            raise ApiError(401, "This client secret has expired: ask"
                           " POST /v1/realtime/client_secrets for a new"
                           " one.", "invalid_api_key")
        if check is Check.UNKNOWN or issued is None:
            raise unauthenticated(key)
        return issued.session


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def bearer(request: Request) -> str | None:
    return authorization_key(request.headers.get("authorization", ""))


def unauthenticated(key: str | None) -> ApiError:
    if not key:
        return ApiError(401, NO_KEY, None)
    return ApiError(401, "Incorrect API key provided.", "invalid_api_key")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read no further than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body is over {limit} bytes.",
                    "request_too_large")


async def offer_fields(request: Request, limit: int
                       ) -> tuple[str, SessionConfig | None]:
    """The offer's SDP, and the session the form asked for, if any."""
    body = await read_body(request, limit)
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind.lower() == "application/sdp":
        return text_of(body, "sdp"), None
    if kind.lower() != "multipart/form-data":
        raise ApiError(415, "Send the offer as application/sdp, or as the"
                       " sdp field of a multipart/form-data body.",
                       "unsupported_media_type")

    async def whole() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        form = await MultiPartParser(request.headers, whole(),
                                     max_files=0, max_fields=2).parse()
    except MultiPartException as error:
        raise ApiError(400, f"Invalid multipart body: {error.message}"
                       " (send the fields sdp and session)",
                       "invalid_value") from None
    sdp, session = form.get("sdp"), form.get("session")
    if not isinstance(sdp, str):
        raise ApiError(400, "Missing required parameter: 'sdp'.",
                       "missing_required_parameter", param="sdp")
    return sdp, None if session is None else session_of(str(session))


def text_of(body: bytes, param: str) -> str:
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise ApiError(400, f"{param} is not UTF-8 text.", "invalid_value",
                       param=param) from None


def session_of(text: str) -> SessionConfig:
    try:
        return SessionConfig.model_validate_json(text)
    except ValidationError as error:
        raise invalid(error, "session") from None


def invalid(error: ValidationError, prefix: str = "") -> ApiError:
    """A validator's first problem, naming the field it is in."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
    return ApiError(400, f"Invalid value for '{where or 'body'}':"
                    f" {first['msg']}", "invalid_value",
                    param=where or None)


def session_update(session: SessionConfig | None) -> str | None:
    """A session asked for at signalling: the call's first event."""
    if session is None:
        return None
    return json.dumps({"type": "session.update",
                       "session": session.model_dump()})


def first_event(asked: SessionConfig | None,
                granted: SessionConfig | None,
                takes_sessions: bool) -> str | None:
    """The session a call starts with, where its dialect takes one. A
    client secret's session is ignored by calls that speak another
    dialect (their settings are the service's); a session asked for in
    the offer is refused by them."""
    if takes_sessions:
        return session_update(asked or granted)
    if asked is not None:
        raise ApiError(400, "This service's calls do not speak OpenAI's"
                       " events and take no session: send the sdp"
                       " alone.", "invalid_value", param="session")
    return None


def signalling_router(calls: RtcCalls, credentials: Credentials,
                      max_offer_bytes: int,
                      takes_sessions: bool = True) -> APIRouter:
    router = APIRouter()

    @router.post(CALLS, status_code=201)
    async def create_call(request: Request) -> Response:
        granted = credentials.caller(request)
        try:
            calls.check_admission()  # before the body is read
            sdp, asked = await offer_fields(request, max_offer_bytes)
            first = first_event(asked, granted, takes_sessions)
            call, answer = await calls.open(read_offer(sdp), first)
        except OfferError as error:
            raise ApiError(400, str(error), "invalid_offer",
                           param="sdp") from None
        except CallRefusedError as error:
            raise unavailable(str(error)) from None
        return Response(answer, 201, {"Location": f"{CALLS}/{call.id}"},
                        media_type="application/sdp")

    @router.get(CALLS + "/{call_id}")
    async def call_stats(call_id: str, request: Request) -> Response:
        credentials.caller(request)
        stats = await calls.stats(call_id)
        if stats is None:
            raise ApiError(404, f"No call {call_id!r}.", "call_not_found",
                           param="call_id")
        return Response(stats.to_json(), media_type="application/json")

    @router.post("/v1/realtime/client_secrets")
    async def create_client_secret(request: Request) -> ClientSecret:
        credentials.api_key(request)
        body = await read_body(request, MAX_SECRET_REQUEST_BYTES)
        try:
            asked = ClientSecretRequest.model_validate_json(body or b"{}")
        except ValidationError as error:
            raise invalid(error) from None
        try:
            value, issued = credentials.secrets.issue(
                asked.expires_after.seconds, asked.session)
        except StoreFullError as error:
            raise ApiError(429, str(error), "rate_limit_exceeded",
                           "rate_limit_error",
                           headers={"Retry-After": "10"}) from None
        session = asked.session or SessionConfig(type="transcription")
        return ClientSecret(value=value, expires_at=int(issued.expires_at),
                            session={**SESSION_OBJECT, "id": new_id("sess"),
                                     **session.model_dump()})

    return router


def add_signalling(app: FastAPI, router: APIRouter,
                   calls: RtcCalls) -> None:
    """The routes, the probes, and the error shape."""
    app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"type": "status", "status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ok = calls.ready() and not calls.draining
        return JSONResponse({"type": "status", "status":
                             "ready" if ok else "not ready"},
                            200 if ok else 503)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error.response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request,
                         error: HTTPException) -> JSONResponse:
        return ApiError(error.status_code, str(error.detail), None,
                        headers=error.headers).response()
