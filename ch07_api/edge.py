"""The edge: API keys and the body limit, before any route reads a byte.

Chapter 7, "SDK and developer experience", and chapter 9's first rule:
refuse early. FastAPI reads a form body before a route's dependencies
run, so a key checked there would be checked after the upload. These
are plain ASGI middleware instead: a request without a valid key
(`Authorization: Bearer KEY`) is answered 401 before its body is read;
a body announced larger than the limit is answered 413 at once, and
one that grows past it while it streams (no `Content-Length`) is cut
off there, so no upload is ever held whole beyond the limit. Errors
take the shape of the route they were meant for: OpenAI's on its
routes, `google.rpc.Status` on the AIP ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

from ch04_streaming.auth import KeyCheck, authorization_key
from ch07_api.errors import (
    ApiError,
    AuthenticationError,
    PayloadTooLargeError,
    UnsupportedMediaError,
    mapping_of,
    openai_body,
    retry_headers,
    rpc_status_body,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = ("/readyz", "/healthz", "/metrics", "/openapi.json", "/docs")
OPENAI_PREFIXES = ("/v1/audio/", "/v1/models")


def is_openai_route(path: str) -> bool:
    return path.startswith(OPENAI_PREFIXES)


def error_response(error: ApiError, path: str) -> JSONResponse:
    """The error in the shape of the route that was asked for."""
    body = (openai_body(error) if is_openai_route(path)
            else rpc_status_body(error))
    return JSONResponse(body, mapping_of(error).status,
                        retry_headers(error))


def require_media_type(headers: Mapping[str, str], expected: str,
                       hint: str) -> None:
    """415 unless the body is `expected` (parameters aside)."""
    media = headers.get("content-type", "")
    if not media.lower().startswith(expected):
        raise UnsupportedMediaError(
            f"'{media or 'no content type'}' is not {expected}{hint}")


@dataclass
class RequireApiKey:
    app: App
    keys: KeyCheck

    async def __call__(self, scope: Scope, receive: Receive,
                       send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(OPEN_PATHS):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        header = headers.get(b"authorization", b"").decode("latin-1")
        if not self.keys.verify(authorization_key(header)):
            error = AuthenticationError(
                "missing or invalid API key: send 'Authorization: Bearer"
                " <key>'")
            response = error_response(error, path)
            response.headers["WWW-Authenticate"] = "Bearer"
            return await response(scope, receive, send)
        await self.app(scope, receive, send)


@dataclass
class LimitBody:
    """The upload limit; on `base64_paths` (JSON bodies carrying the
    file base64-encoded) the body may be a third larger."""

    app: App
    max_bytes: int
    base64_paths: tuple[str, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive,
                       send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        announced = headers.get(b"content-length")
        limit = self.max_bytes
        if scope["path"] in self.base64_paths:
            limit = limit * 4 // 3 + 64 * 1024
        too_large = PayloadTooLargeError(
            f"the request body is over the limit of {limit:,} bytes",
            "file")
        if announced is not None and announced.isdigit() \
                and int(announced) > limit:
            response = error_response(too_large, scope["path"])
            return await response(scope, receive, send)
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large  # from the route's read of the body
            return message

        await self.app(scope, counted, send)
