"""This chapter's HTTP API: the requests a WebSocket server cannot take.

Chapter 9, "Authentication for streaming connections" and "OAuth2 flows
for ML API access". A FastAPI app beside chapter 4's streaming port:
Deepgram's `POST /v1/auth/grant`, AssemblyAI's `GET /v3/token` (also on
the streaming port, where AssemblyAI's SDK looks for it), OAuth2's
`POST /oauth/token` and the JWKS at `/.well-known/jwks.json`; behind
them, chapter 7's transcription API, every route of which needs the
`transcribe` scope (`scope_guard.py`). Bodies
are parsed once, into types, and a body that does not parse is a 400
in the provider's (or RFC 6749's) error shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from ch09_security.grant_routes import (
    AssemblyAIToken,
    DeepgramGrant,
    deepgram_error,
    jwks_body,
)
from ch09_security.key_store import Scope
from ch09_security.oauth import OAuthError, TokenResponse
from ch09_security.scope_guard import RequireScope
from ch09_security.security_layer import SecurityLayer
from ch09_security.token_grants import Refused

MAX_BODY_BYTES = 4096  # a grant's body is a few bytes of JSON


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl_seconds: float | None = None


def json_message(status: int, body: BaseModel) -> JSONResponse:
    return JSONResponse(body.model_dump(exclude_none=True),
                        status_code=status)


def oauth_response(result: TokenResponse | OAuthError) -> JSONResponse:
    """RFC 6749's documents, as they are: no `type` of ours."""
    no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if isinstance(result, OAuthError):
        if result.status == 401:
            no_store["WWW-Authenticate"] = 'Basic realm="speech-api"'
        return JSONResponse({"error": result.error,
                             "error_description": result.error_description},
                            result.status, no_store)
    return JSONResponse(asdict(result), 200, no_store)


def create_http_app(layer: SecurityLayer,
                    transcription: FastAPI | None = None) -> FastAPI:
    """The credential routes; behind them, if given, chapter 7's API,
    each of its routes guarded by the `transcribe` scope."""
    grants, keys, oauth = layer.grants, layer.signing, layer.oauth

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if transcription is None:
            yield
            return
        async with transcription.router.lifespan_context(transcription):
            yield  # chapter 7's pipeline runs while this app does

    app = FastAPI(title="Speech API: credentials", docs_url=None,
                  redoc_url=None, lifespan=lifespan)

    @app.post("/oauth/token")
    async def oauth_token(request: Request) -> Response:
        media = request.headers.get("content-type", "")
        body = await request.body()
        if (not media.startswith("application/x-www-form-urlencoded")
                or len(body) > MAX_BODY_BYTES):
            return oauth_response(OAuthError(
                400, "invalid_request",
                "send an application/x-www-form-urlencoded body"))
        form = dict(parse_qsl(body.decode("latin-1")))
        return oauth_response(oauth.token(
            request.headers.get("Authorization", ""), form))

    @app.post("/v1/auth/grant")
    async def deepgram_grant(request: Request) -> Response:
        body = await request.body()
        try:
            if len(body) > MAX_BODY_BYTES:
                raise ValueError("body too large")
            parsed = (GrantRequest.model_validate_json(body) if body.strip()
                      else GrantRequest())
        except (ValueError, ValidationError):
            return json_message(400, deepgram_error(Refused(
                400, "body must be JSON such as {\"ttl_seconds\": 30}")))
        result = grants.deepgram(request.headers.get("Authorization", ""),
                                 parsed.ttl_seconds)
        if isinstance(result, Refused):
            return json_message(result.status, deepgram_error(result))
        return json_message(200, DeepgramGrant(
            access_token=result.token, expires_in=result.expires_in_s))

    @app.get("/v3/token")
    async def assemblyai_token(request: Request) -> Response:
        result = grants.assemblyai(request.headers.get("Authorization", ""),
                                   dict(request.query_params))
        if isinstance(result, Refused):
            return JSONResponse({"type": "Error", "status": result.status,
                                 "reason": result.reason},
                                status_code=result.status)
        return json_message(200, AssemblyAIToken(
            token=result.token, expires_in_seconds=result.expires_in_s))

    @app.get("/.well-known/jwks.json")
    async def jwks() -> Response:
        return Response(jwks_body(keys), media_type="application/json",
                        headers={"Cache-Control": "max-age=60"})

    if transcription is not None:  # last: these routes come first
        app.mount("/", RequireScope(transcription, layer.credentials,
                                    Scope.TRANSCRIBE))
    return app
