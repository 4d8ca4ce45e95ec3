"""The service's gRPC port: chapter 5's server, behind TLS when asked.

Chapter 9, "Securing audio data: ... in transit (TLS 1.3)". Without a
context the gRPC server listens on the port itself, in plaintext, as
chapter 5 serves it. With one, it listens on an ephemeral port of
127.0.0.1 only, and the TLS terminator (`tls_terminator.py`) takes the
port, so every caller meets the TLS 1.3 floor (and mutual TLS) first.
Stopping runs the other way: no new connections, the gRPC streams
drain, and the relays end as the gRPC server closes its side.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from ch05_protocols.grpc_server import GrpcSpeechServer
from ch09_security.tls_terminator import TlsTerminator


@dataclass
class GrpcPort:
    server: GrpcSpeechServer
    terminator: TlsTerminator | None = None  # with a TLS context

    @property
    def port(self) -> int:
        """The port callers use: the terminator's when there is one."""
        return (self.terminator.port if self.terminator is not None
                else self.server.port)

    async def shutdown(self) -> None:
        if self.terminator is not None:
            self.terminator.close()  # gRPC's drain refuses new calls too
        await self.server.shutdown()
        if self.terminator is not None:
            await self.terminator.stop()


async def open_grpc_port(server: GrpcSpeechServer, host: str, port: int,
                         context: ssl.SSLContext | None) -> GrpcPort:
    """`server` listening on `host:port`: in plaintext, or behind a TLS
    terminator with `context` while it keeps to loopback."""
    if context is None:
        await server.start(host, port)
        return GrpcPort(server)
    await server.start("127.0.0.1", 0)  # never exposed
    terminator = TlsTerminator(context, server.port)
    try:
        await terminator.start(host, port)
    except OSError:  # the port is taken: no gRPC server left behind
        await server.shutdown()
        raise
    return GrpcPort(server, terminator)
