"""The TLS terminator's bounds, in front of an echo service.

Every wait is bounded. A client that drops its connection mid-stream
frees its slot, and the service's side is closed too; a connection
over the cap is closed once its handshake ends, while those within it
are served; `stop` stops accepting at once, lets an open connection go
on until it ends, and closes one that outlives the grace.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ch09_security.tls import client_context, grpc_context
from ch09_security.tls_terminator import TerminatorLimits, TlsTerminator
from tests.ch09.tls_harness import Pki, make_pki

WAIT_S = 10.0


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


@dataclass
class Echo:
    """A plaintext service that sends back what it reads."""

    ended: asyncio.Queue[None] = field(default_factory=asyncio.Queue)

    async def serve(self, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            self.ended.put_nowait(None)  # its connection is over


@asynccontextmanager
async def terminating(pki: Pki, limits: TerminatorLimits
                      ) -> AsyncIterator[tuple[TlsTerminator, Echo]]:
    echo = Echo()
    service = await asyncio.start_server(echo.serve, "127.0.0.1", 0)
    terminator = TlsTerminator(grpc_context(pki.server),
                               service.sockets[0].getsockname()[1], limits)
    await terminator.start("127.0.0.1", 0)
    try:
        async with asyncio.timeout(WAIT_S):
            yield terminator, echo
    finally:
        await terminator.stop()
        service.close()


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(terminator: TlsTerminator, ca: Path) -> Connection:
    context: ssl.SSLContext = client_context(ca)
    context.set_alpn_protocols(["h2"])
    return await asyncio.open_connection("127.0.0.1", terminator.port,
                                         ssl=context)


async def echoes(connection: Connection, data: bytes) -> bool:
    reader, writer = connection
    writer.write(data)
    await writer.drain()
    return await reader.readexactly(len(data)) == data


async def test_a_client_gone_mid_stream_frees_its_slot(pki: Pki) -> None:
    async with terminating(pki, TerminatorLimits(max_connections=1)) as (
            terminator, echo):
        first = await connect(terminator, pki.ca)
        assert await echoes(first, b"hello")
        assert terminator.open_connections == 1
        first[1].transport.abort()  # no goodbye, no close_notify
        await echo.ended.get()  # the service's side is closed too
        assert await terminator.idle(WAIT_S)
        second = await connect(terminator, pki.ca)
        assert await echoes(second, b"the slot is free")
        second[1].close()
    assert terminator.relayed.up == len(b"hellothe slot is free")
    assert terminator.refused == 0


async def test_a_connection_over_the_cap_is_closed(pki: Pki) -> None:
    async with terminating(pki, TerminatorLimits(max_connections=2)) as (
            terminator, _):
        held = [await connect(terminator, pki.ca) for _ in range(2)]
        for connection in held:  # both relayed: the cap is full
            assert await echoes(connection, b"within the cap")
        over_reader, over_writer = await connect(terminator, pki.ca)
        over_writer.write(b"one too many")
        assert await over_reader.read() == b""  # closed, nothing echoed
        assert terminator.refused == 1
        assert await echoes(held[0], b"still served")
        for _, writer in held:
            writer.close()


async def test_stop_refuses_new_connections_and_drains_open_ones(
    pki: Pki,
) -> None:
    async with terminating(pki, TerminatorLimits(grace_s=60.0)) as (
            terminator, _):
        reader, writer = open_one = await connect(terminator, pki.ca)
        terminator.close()  # what stop does first
        stopping = asyncio.create_task(terminator.stop())
        with pytest.raises(ConnectionRefusedError):
            await connect(terminator, pki.ca)
        assert await echoes(open_one, b"still relayed while stopping")
        assert not stopping.done()
        writer.close()  # the connection ends on its own ...
        await stopping  # ... and stop returns, long before the grace
        assert terminator.open_connections == 0
        assert await reader.read() == b""


async def test_stop_closes_a_connection_that_outlives_the_grace(
    pki: Pki,
) -> None:
    async with terminating(pki, TerminatorLimits(grace_s=0.1)) as (
            terminator, echo):
        reader, writer = held = await connect(terminator, pki.ca)
        assert await echoes(held, b"held open")
        await terminator.stop()
        assert terminator.open_connections == 0
        assert await reader.read() == b""  # closed by the terminator
        await echo.ended.get()  # and the service's side with it
        writer.close()


async def test_a_plaintext_client_gets_no_relay(pki: Pki) -> None:
    async with terminating(pki, TerminatorLimits()) as (terminator, _):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", terminator.port)
        writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # h2c preface
        assert await reader.read() == b""
        writer.close()
        assert terminator.open_connections == 0
        assert terminator.relayed.up == 0


async def test_a_gone_grpc_server_closes_the_client_and_says_so(
    pki: Pki, caplog: pytest.LogCaptureFixture,
) -> None:
    vacated = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = vacated.sockets[0].getsockname()[1]
    vacated.close()
    await vacated.wait_closed()  # nothing listens there any more
    terminator = TlsTerminator(grpc_context(pki.server), port,
                               TerminatorLimits())
    await terminator.start("127.0.0.1", 0)
    try:
        async with asyncio.timeout(WAIT_S):
            reader, writer = await connect(terminator, pki.ca)
            assert await reader.read() == b""  # closed: nowhere to relay
            writer.close()
            assert await terminator.idle(WAIT_S)
    finally:
        await terminator.stop()
    assert "event=grpc_unreachable" in caplog.text


async def test_a_client_certificate_is_shown_when_given(pki: Pki) -> None:
    """Mutual TLS from the client's side: `client_context` shows the
    certificate, and a terminator that requires one relays."""
    mutual = grpc_context(pki.mutual)
    echo = Echo()
    service = await asyncio.start_server(echo.serve, "127.0.0.1", 0)
    terminator = TlsTerminator(mutual, service.sockets[0].getsockname()[1],
                               TerminatorLimits())
    await terminator.start("127.0.0.1", 0)
    try:
        async with asyncio.timeout(WAIT_S):
            context = client_context(pki.ca, pki.client.cert,
                                     pki.client.key)
            context.set_alpn_protocols(["h2"])
            connection = await asyncio.open_connection(
                "127.0.0.1", terminator.port, ssl=context)
            assert await echoes(connection, b"a service's call")
            connection[1].close()
    finally:
        await terminator.stop()
        service.close()
