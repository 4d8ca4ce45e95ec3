"""Tier limits for gRPC calls, applied by a server interceptor.

Chapter 8, "Rate limiting tied to billing tiers". The interceptor finds
the customer from the call's API key (`authorization: Token KEY` or
`x-api-key: KEY`) and ends the call with UNAUTHENTICATED when there is
none. A call that streams either way holds one of the customer's stream
slots while it runs: over the tier's limit it ends at once with
RESOURCE_EXHAUSTED, the limit as details and `retry-after` (seconds)
in the trailing metadata, and when it ends, however it ends, the slot
is released. The handler meters its audio with `take_audio` on the
`current_stream()`. Streaming handlers must be async generators.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import grpc

from ch04_streaming.auth import authorization_key
from ch08_metering.accounts import Accounts, Customer
from ch08_metering.limits import Decision, Limiter

Behavior = Callable[[Any, Any], Any]
Metadata = Iterable[tuple[str, str | bytes]]


class CallContext(Protocol):
    """What the interceptor uses of `grpc.aio.ServicerContext`."""

    def invocation_metadata(self) -> Metadata | None: ...

    async def abort(self, code: grpc.StatusCode, details: str = "",
                    trailing_metadata: Metadata = ()) -> NoReturn: ...


@dataclass(frozen=True)
class LimitedStream:
    """The stream a call holds a slot for, to charge its audio to."""

    customer: Customer
    id: str


# Each call runs in a context of its own, so this is the call's stream.
_current_stream: ContextVar[LimitedStream] = ContextVar("current_stream")


def current_stream() -> LimitedStream:
    """The stream of the running call; LookupError outside one."""
    return _current_stream.get()


def api_key(metadata: Metadata) -> str | None:
    for name, value in metadata:
        if isinstance(value, bytes):  # a binary (`-bin`) entry
            continue
        if name in ("x-api-key", "x-goog-api-key"):  # ours, Google's
            return value
        if name == "authorization" and (key := authorization_key(value)):
            return key
    return None


async def abort_refused(context: CallContext,
                        decision: Decision) -> NoReturn:
    """End the call: it is over a limit of the customer's tier."""
    retry_after = (
        () if math.isinf(decision.retry_after_s)
        else (("retry-after", f"{decision.retry_after_s:.3f}"),)
    )
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                        decision.reason, trailing_metadata=retry_after)


class LimitInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call; holds a stream slot for streaming ones."""

    def __init__(self, accounts: Accounts, limiter: Limiter,
                 clock: Callable[[], float] = time.time) -> None:
        self.accounts = accounts
        self.limiter = limiter
        self.clock = clock

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:  # no such method: gRPC answers UNIMPLEMENTED
            return None
        if handler.response_streaming:
            kind = ("stream_stream" if handler.request_streaming
                    else "unary_stream")
            guarded = self._guard_stream(getattr(handler, kind))
        else:
            kind = ("stream_unary" if handler.request_streaming
                    else "unary_unary")
            guarded = self._guard_call(getattr(handler, kind),
                                       limited=handler.request_streaming)
        return handler._replace(**{kind: guarded})

    def _guard_stream(self, behavior: Behavior) -> Behavior:
        async def guarded(request: Any,
                          context: CallContext) -> AsyncIterator[Any]:
            customer = await self._customer(context)
            async with self._stream_slot(customer, context):
                async for response in behavior(request, context):
                    yield response

        return guarded

    def _guard_call(self, behavior: Behavior, limited: bool) -> Behavior:
        async def guarded(request: Any, context: CallContext) -> Any:
            customer = await self._customer(context)
            if not limited:
                return await behavior(request, context)
            async with self._stream_slot(customer, context):
                return await behavior(request, context)

        return guarded

    async def _customer(self, context: CallContext) -> Customer:
        key = api_key(context.invocation_metadata() or ())
        customer = None if key is None else (
            self.accounts.customer_for_key(key))
        if customer is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "unknown API key: send authorization: "
                                "Token KEY, or x-api-key: KEY")
        return customer

    @asynccontextmanager
    async def _stream_slot(self, customer: Customer,
                           context: CallContext) -> AsyncIterator[None]:
        stream = LimitedStream(customer, uuid.uuid4().hex)
        decision = await self.limiter.open_stream(customer, stream.id,
                                                  self.clock())
        if not decision.allowed:
            await abort_refused(context, decision)
        _current_stream.set(stream)
        try:
            yield
        finally:
            await self.limiter.close_stream(customer, stream.id)
