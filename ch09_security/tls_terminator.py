"""A TLS 1.3 terminator in front of the gRPC server.

Chapter 9, "Securing audio data: ... in transit (TLS 1.3)". grpcio's
server credentials take no TLS version (grpc/grpc#37305), so gRPC's own
TLS would still accept a TLS 1.2 client. Instead the gRPC server
listens in plaintext on a loopback port of its own (127.0.0.1, never
exposed), and this relay listens on the gRPC port with `tls.py`'s
gRPC context: TLS 1.3 or no connection, HTTP/2 by ALPN, and a client
certificate from the CA under mutual TLS. Each connection, once its
handshake is done, is spliced to the gRPC server byte for byte by
chapter 5's relay pumps. Bounded: at most `max_connections` relayed at
once (each holds two sockets); one more is closed as soon as its
handshake ends, and counted in `refused`. A handshake ends within
`handshake_timeout_s`, relayed or not. `stop` stops accepting, lets
open connections end within `grace_s`, then closes the rest. The cost:
one more hop, in Python, every byte copied once more each way. The
gRPC server behind it sees every caller as 127.0.0.1 and no client
certificate, so it cannot tell which service called; the API key or
token in the call's metadata is checked there as before.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

from ch05_protocols.byte_relay import WireBytes, splice

log = logging.getLogger("ch09_security")


@dataclass(frozen=True)
class TerminatorLimits:
    # Two sockets each: 500 stay within a default limit of 1,024 files.
    max_connections: int = 500
    handshake_timeout_s: float = 10.0
    grace_s: float = 5.0  # open connections may end on their own
    chunk_bytes: int = 65_536  # the most one read takes


class TlsTerminator:
    """Listens with `context`; relays each connection, decrypted, to
    `target_port` on 127.0.0.1."""

    def __init__(self, context: ssl.SSLContext, target_port: int,
                 limits: TerminatorLimits = TerminatorLimits()) -> None:
        self.context = context
        self.target_port = target_port
        self.limits = limits
        self.relayed = WireBytes()
        self.refused = 0  # connections over the cap, closed at once
        self.port = 0  # once started
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.Task[None]] = set()

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def close(self) -> None:
        """Accept no more connections; the open ones go on."""
        if self._server is not None:
            self._server.close()

    async def idle(self, timeout_s: float) -> bool:
        """Whether every open connection ended within `timeout_s`."""
        if self._open:
            await asyncio.wait(set(self._open), timeout=timeout_s)
        return not self._open

    async def stop(self) -> None:
        """Stop accepting, let open connections end within the grace,
        then close those still open."""
        self.close()
        if not await self.idle(self.limits.grace_s):
            log.info("event=tls_relays_closed open=%d", len(self._open))
        for relay in self._open:
            relay.cancel()
        await asyncio.gather(*self._open, return_exceptions=True)
        if self._server is not None:  # (waits for connections on 3.12)
            await self._server.wait_closed()

    # --8<-- [start:grpc_tls_terminator]
    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._accept, host, port, ssl=self.context,
            ssl_handshake_timeout=self.limits.handshake_timeout_s)
        self.port = self._server.sockets[0].getsockname()[1]

    def _accept(self, client: asyncio.StreamReader,
                to_client: asyncio.StreamWriter) -> None:
        """A connection, its TLS 1.3 handshake done: relayed to the
        gRPC server's loopback port, or closed if the cap is reached."""
        if len(self._open) >= self.limits.max_connections:
            self.refused += 1
            to_client.close()
            return
        relay = asyncio.create_task(self._relay(client, to_client))
        self._open.add(relay)
        relay.add_done_callback(self._open.discard)

    async def _relay(self, client: asyncio.StreamReader,
                     to_client: asyncio.StreamWriter) -> None:
        try:
            service, to_service = await asyncio.open_connection(
                "127.0.0.1", self.target_port)
            await splice(client, to_client, service, to_service,
                         self.limits.chunk_bytes, self.relayed)
        except OSError as error:  # the gRPC server has gone
            log.warning("event=grpc_unreachable error=%s", error)
        finally:
            to_client.close()  # if the splice did not
    # --8<-- [end:grpc_tls_terminator]
