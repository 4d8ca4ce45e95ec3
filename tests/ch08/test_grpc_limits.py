"""Tier limits on gRPC calls: keys, stream slots, audio, and release.

A real gRPC server in this process, with no protos: the methods take
and return raw bytes. `Echo` streams both ways and charges each request
as 250 ms of audio; `Upload` streams requests in, `Whoami` is unary.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from ch08_metering.accounts import Accounts, Customer, Tier, key_digest
from ch08_metering.grpc_limits import (
    CallContext,
    LimitInterceptor,
    abort_refused,
    current_stream,
)
from ch08_metering.limits import (
    Decision,
    LimiterUnavailableError,
    LocalLimiter,
)

KEY = "free-key"
TIMEOUT_S = 5.0
T0 = 1_700_000_000.0
FREE = Tier("free", max_concurrent_streams=2, audio_seconds_per_minute=2)
ACCOUNTS = Accounts(
    tiers={"free": FREE},
    customers={"alice": Customer("alice", FREE, "cus_alice")},
    by_key_digest={key_digest(KEY): "alice"},
)
FRAME_S = 0.25


class WatchedLimiter(LocalLimiter):
    """Tells a test each stream it has closed."""

    def __init__(self, grant_s: float) -> None:
        super().__init__(grant_s)
        self.closed: asyncio.Queue[str] = asyncio.Queue()

    async def close_stream(self, customer: Customer, stream_id: str
                           ) -> None:
        await super().close_stream(customer, stream_id)
        self.closed.put_nowait(stream_id)


@dataclass
class Running:
    channel: Any
    limiter: WatchedLimiter

    def method(self, name: str, kind: str = "stream_stream") -> Any:
        return getattr(self.channel, kind)(f"/test.Speech/{name}")


class UnreachableLimiter(WatchedLimiter):
    """Its shared state is down, as Redis may be."""

    async def reserve(self, customer: Customer, stream_id: str,
                      need: float, want: float, now: float,
                      ) -> tuple[Decision, float]:
        raise LimiterUnavailableError("connection refused")

    async def release(self, customer: Customer, stream_id: str,
                      unused_s: float) -> None:
        raise LimiterUnavailableError("connection refused")


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    async with serving(WatchedLimiter(grant_s=FRAME_S)) as running:
        yield running


@asynccontextmanager
async def serving(limiter: WatchedLimiter) -> AsyncIterator[Running]:

    async def echo(requests: AsyncIterator[bytes],
                   context: CallContext) -> AsyncIterator[bytes]:
        stream = current_stream()
        async for request in requests:
            decision = await limiter.take_audio(
                stream.customer, stream.id, FRAME_S, T0)
            if not decision.allowed:
                await abort_refused(context, decision)
            yield request

    async def upload(requests: AsyncIterator[bytes],
                     context: CallContext) -> bytes:
        return b"".join([request async for request in requests])

    async def whoami(request: bytes, context: CallContext) -> bytes:
        return b"ok"

    service = grpc.method_handlers_generic_handler("test.Speech", {
        "Echo": grpc.stream_stream_rpc_method_handler(echo),
        "Upload": grpc.stream_unary_rpc_method_handler(upload),
        "Whoami": grpc.unary_unary_rpc_method_handler(whoami),
    })
    interceptor = LimitInterceptor(ACCOUNTS, limiter, clock=lambda: T0)
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers((service,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        async with asyncio.timeout(TIMEOUT_S):
            yield Running(channel, limiter)
    finally:
        await channel.close()
        await server.stop(None)


def token(key: str = KEY) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Token {key}"),)


async def started(running: Running, metadata: Any = None) -> Any:
    """A call to Echo that holds its slot: one frame went through."""
    call = running.method("Echo")(metadata=metadata or token(),
                                  timeout=TIMEOUT_S)
    await call.write(b"frame")
    assert await call.read() == b"frame"
    return call


async def ending(call: Any) -> tuple[Any, str, dict[str, str]]:
    """How a call ended: status code, details, trailing metadata."""
    trailing = {k: v for k, v in await call.trailing_metadata() or ()}
    return await call.code(), await call.details(), trailing


async def test_calls_under_the_cap_stream(running: Running) -> None:
    call = await started(running)
    await call.write(b"more")
    assert await call.read() == b"more"
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK


async def test_x_api_key_is_accepted_too(running: Running) -> None:
    call = await started(running, metadata=(("x-api-key", KEY),))
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK


async def test_a_call_over_the_cap_is_resource_exhausted(
    running: Running,
) -> None:
    first, second = await started(running), await started(running)
    third = running.method("Echo")(iter(()), metadata=token(),
                                   timeout=TIMEOUT_S)
    code, details, trailing = await ending(third)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == "tier free: 2 concurrent streams; retry in 1.0 s"
    assert trailing["retry-after"] == "1.000"
    for call in (first, second):
        call.cancel()


async def test_an_ended_stream_frees_its_slot(running: Running) -> None:
    first = await started(running)
    second = await started(running)
    await first.done_writing()
    assert await first.code() == grpc.StatusCode.OK
    second.cancel()  # the server learns of it when it learns of it
    assert await second.code() == grpc.StatusCode.CANCELLED
    await running.limiter.closed.get()
    await running.limiter.closed.get()
    third, fourth = await started(running), await started(running)
    for call in (third, fourth):
        await call.done_writing()
        assert await call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("metadata", [
    (("authorization", "Token wrong"),),
    (("authorization", f"Basic {KEY}"),),
    (("x-api-key-bin", KEY.encode()),),
    (),
], ids=["wrong", "not-a-token", "binary", "missing"])
async def test_without_a_known_key_unauthenticated(
    running: Running, metadata: Any,
) -> None:
    call = running.method("Echo")(iter((b"frame",)), metadata=metadata,
                                  timeout=TIMEOUT_S)
    code, details, _ = await ending(call)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert details.startswith("unknown API key")


async def test_audio_over_the_budget_ends_the_call(running: Running) -> None:
    call = await started(running)
    for _ in range(7):  # 2 s per minute: 8 frames of 250 ms in all
        await call.write(b"frame")
        assert await call.read() == b"frame"
    await call.write(b"one too many")
    code, details, trailing = await ending(call)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == "tier free: 2 audio s per minute; retry in 7.5 s"
    assert trailing["retry-after"] == "7.500"


async def test_client_streaming_calls_hold_a_slot(running: Running) -> None:
    first, second = await started(running), await started(running)
    upload = running.method("Upload", "stream_unary")
    code, _, _ = await ending(upload(iter((b"a",)), metadata=token(),
                                      timeout=TIMEOUT_S))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    await first.done_writing()
    assert await first.code() == grpc.StatusCode.OK
    reply = await upload(iter((b"a", b"b")), metadata=token(),
                         timeout=TIMEOUT_S)
    assert reply == b"ab"
    second.cancel()


async def test_unary_calls_are_authenticated_but_hold_no_slot(
    running: Running,
) -> None:
    calls = [await started(running), await started(running)]
    whoami = running.method("Whoami", "unary_unary")
    assert await whoami(b"", metadata=token(), timeout=TIMEOUT_S) == b"ok"
    code, _, _ = await ending(whoami(b"", metadata=token("wrong"),
                                      timeout=TIMEOUT_S))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    for call in calls:
        call.cancel()


async def test_a_method_nobody_serves_is_unimplemented(
    running: Running,
) -> None:
    call = running.method("Nothing", "unary_unary")(
        b"", metadata=token(), timeout=TIMEOUT_S)
    code, _, _ = await ending(call)
    assert code == grpc.StatusCode.UNIMPLEMENTED


async def test_when_the_limits_are_down_calls_go_on_unlimited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serving(UnreachableLimiter(grant_s=FRAME_S)) as running:
        # Over the cap of two streams, and over the audio budget.
        calls = [await started(running) for _ in range(3)]
        for _ in range(10):
            await calls[0].write(b"frame")
            assert await calls[0].read() == b"frame"
        for call in calls:
            await call.done_writing()
            assert await call.code() == grpc.StatusCode.OK
        for _ in calls:  # released without reaching the shared state
            await running.limiter.closed.get()
    assert "event=limits_unavailable" in caplog.text


async def test_a_bearer_token_is_accepted_too(running: Running) -> None:
    call = await started(running, metadata=(
        ("authorization", f"Bearer {KEY}"),))
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK
