"""Who may call: API keys on every call but health and reflection.

Chapter 5, "gRPC bidirectional streaming", and chapter 9's
authentication for streaming connections. gRPC carries credentials as
call metadata: `authorization: Bearer KEY` (or `Token KEY`), parsed as
chapter 4 parses the HTTP header and checked against the same keys.
The check is an interceptor, so every recognition service mounted on
the server is covered, and it runs before any request is read. Health
and reflection stay open: load balancers and `grpcurl` hold no key.
`ScopedInterceptor` keeps another interceptor off the open services.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from ch04_streaming.auth import KeyCheck, authorization_key

# Services anyone may call: probes and tools, which hold no key.
OPEN_SERVICES = frozenset({health.SERVICE_NAME, reflection.SERVICE_NAME})

Continuation = Callable[[Any], Awaitable[Any]]


def service_of(method: str) -> str:
    """`/speech.v1.Speech/StreamingRecognize` -> `speech.v1.Speech`."""
    return method.lstrip("/").split("/", 1)[0]


def call_key(metadata: Iterable[tuple[str, str | bytes]] | None
             ) -> str | None:
    """The key of the call's `authorization` entry, or of the
    `x-goog-api-key` entry Google's client libraries send for an API
    key, if it has one."""
    for name, value in metadata or ():
        if not isinstance(value, str):
            continue
        if name == "authorization":
            return authorization_key(value)
        if name == "x-goog-api-key":
            return value.strip()
    return None


def refusing(handler: Any, code: grpc.StatusCode, details: str) -> Any:
    """`handler`, of whatever streaming kind, made to end with `code`
    before it reads a request."""

    async def refuse(request: Any,
                     context: grpc.aio.ServicerContext[Any, Any]
                     ) -> NoReturn:
        await context.abort(code, details)

    kind = (("stream" if handler.request_streaming else "unary") + "_"
            + ("stream" if handler.response_streaming else "unary"))
    return handler._replace(**{kind: refuse})


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED unless the call carries one of `keys`."""

    def __init__(self, keys: KeyCheck,
                 open_services: Collection[str] = OPEN_SERVICES) -> None:
        self.keys = keys
        self.open_services = open_services

    async def intercept_service(self, continuation: Continuation,
                                handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or service_of(method) in self.open_services:
            return handler
        key = call_key(handler_call_details.invocation_metadata)
        if key is not None and self.keys.verify(key):
            return handler
        reason = "invalid API key" if key else "missing API key"
        return refusing(handler, grpc.StatusCode.UNAUTHENTICATED,
                        f"{reason}: send metadata authorization:"
                        " Bearer KEY")


class ScopedInterceptor(grpc.aio.ServerInterceptor):
    """Another interceptor, for every call but the open services'."""

    def __init__(self, inner: grpc.aio.ServerInterceptor,
                 open_services: Collection[str] = OPEN_SERVICES) -> None:
        self.inner = inner
        self.open_services = open_services

    async def intercept_service(self, continuation: Continuation,
                                handler_call_details: Any) -> Any:
        if service_of(handler_call_details.method) in self.open_services:
            return await continuation(handler_call_details)
        return await self.inner.intercept_service(
            continuation, handler_call_details)
