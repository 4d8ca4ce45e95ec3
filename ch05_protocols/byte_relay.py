"""A TCP relay that counts the bytes each way: the wire, measured.

Chapter 5, "Production reality". A client connects to the relay, the
relay connects to the service, and every byte between them passes
through here and is counted, framing and handshakes included. The
base64 overhead in the comparison comes from these counters, not from
the arithmetic of four characters for three bytes. `splice`, the two
pumps of one connection, serves chapter 9's TLS terminator too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class WireBytes:
    up: int = 0  # client to service
    down: int = 0  # service to client

    def count_up(self, size: int) -> None:
        self.up += size

    def count_down(self, size: int) -> None:
        self.down += size


async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
               chunk_bytes: int, count: Callable[[int], None]) -> None:
    """Copies `source` to `sink` until `source` ends or either fails."""
    try:
        while data := await source.read(chunk_bytes):
            count(len(data))
            sink.write(data)
            await sink.drain()  # the relay buffers no more than TCP
    except OSError:  # a reset, a TLS record cut short: the end too
        pass


async def splice(client: asyncio.StreamReader,
                 to_client: asyncio.StreamWriter,
                 service: asyncio.StreamReader,
                 to_service: asyncio.StreamWriter,
                 chunk_bytes: int, counted: WireBytes) -> None:
    """Both ways at once until either side ends; then the other pump is
    cancelled and both connections closed, as a direct one would be."""
    pumps = {asyncio.create_task(pump(client, to_service, chunk_bytes,
                                      counted.count_up)),
             asyncio.create_task(pump(service, to_client, chunk_bytes,
                                      counted.count_down))}
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for running in pumps:
            running.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        to_service.close()
        to_client.close()


class ByteRelay:
    """Listens on 127.0.0.1; forwards every connection to `port`."""

    def __init__(self, port: int, chunk_bytes: int = 65_536) -> None:
        self.target_port = port
        self.counted = WireBytes()
        self._chunk_bytes = chunk_bytes
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the relay first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for relay in self._relays:
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        if self._server is not None:  # (waits for connections on 3.12)
            await self._server.wait_closed()

    def _accept(self, client_in: asyncio.StreamReader,
                client_out: asyncio.StreamWriter) -> None:
        relay = asyncio.create_task(self._relay(client_in, client_out))
        self._relays.add(relay)  # a task of ours, for stop to cancel
        relay.add_done_callback(self._relays.discard)

    async def _relay(self, client_in: asyncio.StreamReader,
                     client_out: asyncio.StreamWriter) -> None:
        try:
            service_in, service_out = await asyncio.open_connection(
                "127.0.0.1", self.target_port)
            await splice(client_in, client_out, service_in, service_out,
                         self._chunk_bytes, self.counted)
        finally:
            client_out.close()  # if the splice did not
