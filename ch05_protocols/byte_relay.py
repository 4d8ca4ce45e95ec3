"""A TCP relay that counts the bytes each way: the wire, measured.

Chapter 5, "Production reality". A client connects to the relay, the
relay connects to the service, and every byte between them passes
through here and is counted, framing and handshakes included. The
base64 overhead in the comparison comes from these counters, not from
the arithmetic of four characters for three bytes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class WireBytes:
    up: int = 0  # client to service
    down: int = 0  # service to client


class ByteRelay:
    """Listens on 127.0.0.1; forwards every connection to `port`."""

    def __init__(self, port: int, chunk_bytes: int = 65_536) -> None:
        self.target_port = port
        self.counted = WireBytes()
        self._chunk_bytes = chunk_bytes
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the relay first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _relay(self, client_in: asyncio.StreamReader,
                     client_out: asyncio.StreamWriter) -> None:
        service_in, service_out = await asyncio.open_connection(
            "127.0.0.1", self.target_port)
        pumps = (asyncio.create_task(self._pump(client_in, service_out,
                                                up=True)),
                 asyncio.create_task(self._pump(service_in, client_out,
                                                up=False)))
        self._pumps.update(pumps)
        await asyncio.gather(*pumps, return_exceptions=True)
        self._pumps.difference_update(pumps)

    async def _pump(self, source: asyncio.StreamReader,
                    sink: asyncio.StreamWriter, up: bool) -> None:
        try:
            while data := await source.read(self._chunk_bytes):
                if up:
                    self.counted.up += len(data)
                else:
                    self.counted.down += len(data)
                sink.write(data)
                await sink.drain()  # the relay buffers no more than TCP
        except ConnectionError:
            pass
        finally:
            # One side ended: end the other, as a direct connection would.
            sink.close()
