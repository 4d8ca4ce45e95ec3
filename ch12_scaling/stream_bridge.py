"""A stream through the Serve proxy, handed to chapter 6's pipeline.

Chapter 12, "Horizontal scaling". Ray Serve gives a replica the
client's WebSocket as an ASGI connection; chapter 6's pipeline serves
WebSockets itself, with its admission, dialects, caps and drain. The
bridge joins the two without a copy of either: it opens the same
request against the pipeline inside the replica (loopback, same
process), answers the client as the pipeline answered (a refusal's
status, headers and JSON body before the upgrade; the chosen
subprotocol after it), then relays frames both ways until one side
closes, passing the close code and reason on. A client that vanishes
is a close the pipeline sees at once, so its stream slot is freed. In
the lab a replica stands in a region some way off: each message is
held for the one-way delay of that distance, in order, both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncIterator,
    Iterable,
    Mapping,
    MutableMapping,
)
from typing import Any, TypeVar

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

# Headers that belong to one hop, or to the handshake itself: never
# passed on, in either direction.
HOP_HEADERS = frozenset({
    "host", "connection", "upgrade", "content-length", "keep-alive",
    "transfer-encoding", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-extensions", "sec-websocket-protocol",
    "sec-websocket-accept", "date", "server"})
# Close codes a peer may not send itself: an abnormal end becomes an
# internal error the client can act on.
RESERVED_CODES = {1005: 1000, 1006: 1011, 1015: 1011}
OPEN_TIMEOUT_S = 10.0
HELD_MESSAGES = 1024  # a delayed link's backlog, at most
T = TypeVar("T")


def delayed(source: AsyncIterator[T], delay_s: float) -> AsyncIterator[T]:
    """`source`'s items in order, each `delay_s` after it came."""
    return held_back(source, delay_s) if delay_s > 0 else source


async def held_back(source: AsyncIterator[T], delay_s: float
                    ) -> AsyncIterator[T]:
    loop = asyncio.get_running_loop()
    held: asyncio.Queue[tuple[float, T] | None] = asyncio.Queue(
        HELD_MESSAGES)

    async def pull() -> None:
        try:
            async for item in source:
                await held.put((loop.time() + delay_s, item))
        finally:
            await held.put(None)  # the source ended, or failed

    puller = asyncio.create_task(pull())
    try:
        while (entry := await held.get()) is not None:
            due, item = entry
            await asyncio.sleep(due - loop.time())
            yield item
    finally:
        puller.cancel()
        await asyncio.gather(puller, return_exceptions=True)


def passed_on(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers
            if name.lower() not in HOP_HEADERS]


def inner_url(base: str, websocket: WebSocket) -> str:
    query = websocket.scope.get("query_string", b"").decode("latin-1")
    path = websocket.scope["path"]
    return f"{base}{path}?{query}" if query else f"{base}{path}"


async def bridge(websocket: WebSocket, base: str, max_message_bytes: int,
                 extra_headers: Mapping[str, str],
                 one_way_s: float = 0.0) -> None:
    """Serve one client WebSocket through the pipeline at `base`;
    `extra_headers` go on the answer (which replica served it)."""
    offered = [Subprotocol(p) for p in websocket.scope.get(
        "subprotocols", [])]
    try:
        inner = await connect(
            inner_url(base, websocket),
            additional_headers=passed_on(websocket.headers.items()),
            subprotocols=offered or None, compression=None,
            max_size=max_message_bytes, open_timeout=OPEN_TIMEOUT_S)
    except InvalidStatus as refused:
        await websocket.send_denial_response(Response(
            bytes(refused.response.body or b""),
            refused.response.status_code,
            headers=dict(passed_on(refused.response.headers.raw_items()))))
        return
    except (OSError, TimeoutError):
        await websocket.close(1013, "replica not serving; retry")
        return
    reply = inner.response.headers.raw_items() if inner.response else []
    headers = [*passed_on(reply), *extra_headers.items()]
    await websocket.accept(
        subprotocol=inner.subprotocol,
        headers=[(n.lower().encode(), v.encode()) for n, v in headers])
    await relay(websocket, inner, one_way_s)


async def relay(websocket: WebSocket, inner: ClientConnection,
                one_way_s: float = 0.0) -> None:
    """Frames both ways; the first side to close ends both."""
    upstream = asyncio.create_task(
        client_to_pipeline(websocket, inner, one_way_s))
    downstream = asyncio.create_task(
        pipeline_to_client(websocket, inner, one_way_s))
    try:
        await asyncio.wait({upstream, downstream},
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (upstream, downstream):
            task.cancel()
        await asyncio.gather(upstream, downstream, return_exceptions=True)
        await inner.close()


async def client_messages(websocket: WebSocket
                          ) -> AsyncIterator[MutableMapping[str, Any]]:
    while True:
        message = await websocket.receive()
        yield message
        if message["type"] == "websocket.disconnect":
            return


async def client_to_pipeline(websocket: WebSocket, inner: ClientConnection,
                             one_way_s: float) -> None:
    async for message in delayed(client_messages(websocket), one_way_s):
        if message["type"] == "websocket.disconnect":
            code = int(message.get("code") or 1000)
            await inner.close(RESERVED_CODES.get(code, code),
                              message.get("reason") or "")
            return
        data = message.get("bytes")
        await inner.send(data if data is not None else message["text"])


async def pipeline_to_client(websocket: WebSocket, inner: ClientConnection,
                             one_way_s: float) -> None:
    try:
        async for frame in delayed(aiter(inner), one_way_s):
            if isinstance(frame, bytes):
                await websocket.send_bytes(frame)
            else:
                await websocket.send_text(frame)
    except ConnectionClosed:
        pass
    code = inner.close_code or 1006
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.close(RESERVED_CODES.get(code, code),
                              inner.close_reason or "")
