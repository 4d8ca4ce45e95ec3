"""The ingest API behind its real server, over real sockets: clients too
slow, too large or gone mid-request cost a bounded time, are answered
as HTTP says, and are no error of the server, which goes on serving.

The server runs in the test's event loop, so its deadlines and the
test's pauses share one clock: a client that trickles for longer than
a deadline has always been cut off before it finishes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ch04_streaming.auth import ApiKeys
from ch08_metering.accounts import load_accounts
from ch08_metering.ingest_api import create_ingest_app
from ch08_metering.request_timeouts import server_config
from ch08_metering.serve import EmbeddedServer
from tests.ch08.delivery_harness import Ledgers
from tests.ch08.ingest_harness import AUTH, KEY, NOW, raw_event

DEADLINE_S = 0.5  # for the head, and for the body
PAUSE_S = 0.02  # between the bytes of a trickling client
WAIT_S = 10.0  # the most any step of a test waits


@dataclass
class Ingest:
    server: EmbeddedServer
    port: int

    async def idle(self) -> None:
        """Until every connection is closed and every request done."""
        state = self.server.server_state
        async with asyncio.timeout(WAIT_S):
            while state.connections or state.tasks:
                await asyncio.sleep(0.01)


@pytest.fixture
async def ingest(tmp_path: Path, ledgers: Ledgers,
                 monkeypatch: pytest.MonkeyPatch,
                 caplog: pytest.LogCaptureFixture
                 ) -> AsyncIterator[Ingest]:
    """The ingest API on an ephemeral port, configured as `serve`
    configures it, with deadlines short enough for a test."""
    # Another test's uvicorn may have set up logging of its own, which
    # stops its records before they reach the test's capture.
    monkeypatch.setattr(logging.getLogger("uvicorn"), "propagate", True)
    caplog.set_level(logging.INFO)
    ledger = ledgers.at(f"sqlite:///{tmp_path}/ledger.sqlite3")
    app = create_ingest_app(ledger, load_accounts(), ApiKeys(()),
                            clock=NOW.timestamp,
                            service_keys=ApiKeys.of(KEY),
                            body_timeout_s=DEADLINE_S)
    server = EmbeddedServer(server_config(app, DEADLINE_S))
    listener = socket.create_server(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(WAIT_S):
            while not server.started:
                if task.done():
                    await task
                await asyncio.sleep(0.01)
        yield Ingest(server, listener.getsockname()[1])
    finally:
        server.should_exit = True
        async with asyncio.timeout(WAIT_S):
            await task
        listener.close()


def head(content_length: int, extra: bytes = b"") -> bytes:
    return (b"POST /v1/usage/events HTTP/1.1\r\nHost: ingest\r\n"
            b"Authorization: Bearer " + KEY.encode() + b"\r\n"
            b"Content-Type: application/json\r\n" + extra +
            b"Content-Length: %d\r\n\r\n" % content_length)


async def trickle(writer: asyncio.StreamWriter, data: bytes,
                  until: asyncio.Task[bytes]) -> int:
    """Send `data` a byte at a time until `until` is done, or for most
    of the server's deadline; bytes sent. Then the client goes quiet:
    a byte written after the server's reply and close is answered with
    a reset, which can discard the reply before it is read."""
    loop = asyncio.get_running_loop()
    quiet_at = loop.time() + 0.6 * DEADLINE_S
    for sent in range(len(data)):
        if until.done() or loop.time() >= quiet_at:
            return sent
        writer.write(data[sent:sent + 1])
        await asyncio.sleep(PAUSE_S)
    return len(data)


async def answer_to_trickle(port: int, data: bytes,
                            ) -> tuple[bytes, int]:
    """What the server sent until it closed, and how much was sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    reply = asyncio.create_task(reader.read())  # to the end
    try:
        sent = await trickle(writer, data, reply)
        async with asyncio.timeout(WAIT_S):
            return await reply, sent
    finally:
        writer.close()


async def next_request_is_served(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 timeout=WAIT_S) as client:
        response = await client.post("/v1/usage/events",
                                     json=raw_event(1), headers=AUTH)
    assert response.status_code == 202
    assert response.json()["results"][0]["status"] == "accepted"


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What was logged at ERROR or with a traceback."""
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_head_sent_a_byte_at_a_time_is_cut_off_with_408(
        ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    request = head(2)  # ~150 bytes: 3 s at this pace, 6 deadlines
    answer, sent = await answer_to_trickle(ingest.port, request)
    assert sent < len(request)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert b"connection: close" in rest.lower()
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["reason"] == (
        "request head not received within 0.5 s")
    await next_request_is_served(ingest.port)
    assert "event=request_timeout part=head" in caplog.text
    assert errors(caplog) == []


async def test_a_connection_that_sends_nothing_is_closed(
        ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1",
                                                   ingest.port)
    try:
        async with asyncio.timeout(WAIT_S):
            assert await reader.read() == b""  # nobody to answer
    finally:
        writer.close()
    assert "event=request_timeout part=head" in caplog.text
    assert errors(caplog) == []


async def test_a_body_sent_a_byte_at_a_time_is_cut_off_with_408(
        ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps(raw_event(1)).encode()  # ~250 bytes: 5 s, or 10
    reader, writer = await asyncio.open_connection("127.0.0.1",
                                                   ingest.port)
    writer.write(head(len(body)))
    reply = asyncio.create_task(reader.read())
    try:
        sent = await trickle(writer, body, reply)
        async with asyncio.timeout(WAIT_S):
            answer = await reply
    finally:
        writer.close()
    assert sent < len(body)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert b"connection: close" in rest.lower()
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["reason"] == (
        "body not received within 0.5 s")
    await next_request_is_served(ingest.port)
    assert "event=request_timeout part=body" in caplog.text
    assert errors(caplog) == []


async def test_a_head_over_16_kib_is_refused(
        ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    """Without its end, so the server cannot take it as complete."""
    reader, writer = await asyncio.open_connection("127.0.0.1",
                                                   ingest.port)
    writer.write(head(2, b"X-Padding: " + b"x" * 17_000 + b"\r\n")[:-2])
    try:
        async with asyncio.timeout(WAIT_S):
            answer = await reader.read()
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    await next_request_is_served(ingest.port)
    assert errors(caplog) == []


async def test_a_client_that_leaves_mid_body_is_no_error(
        ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps([raw_event(n) for n in range(10)]).encode()
    _, writer = await asyncio.open_connection("127.0.0.1", ingest.port)
    writer.write(head(len(body)) + body[:len(body) // 2])
    await writer.drain()
    writer.close()  # half a body, then gone
    await writer.wait_closed()
    async with asyncio.timeout(WAIT_S):  # until the server has seen it
        while "client_left" not in caplog.text and not errors(caplog):
            await asyncio.sleep(0.01)
    await ingest.idle()
    await next_request_is_served(ingest.port)
    assert errors(caplog) == []
    assert "event=client_left part=body" in caplog.text
