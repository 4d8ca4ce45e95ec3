"""The WebTransport server: admission, sessions on chapter 4's core.

Chapter 5, "WebTransport: QUIC datagrams". One path (`/v1/realtime`)
takes WebTransport sessions for one dialect. Each request is decided
before a session exists, as chapter 4 decides before the WebSocket
upgrade: anything but an extended CONNECT to the path is 404, a
missing or wrong key 401 (a browser cannot set headers on
WebTransport, so `?key=` works as well as `Authorization: Bearer`), a
server that is loading, draining or full 503 with `retry-after`, a bad
query 400. An admitted session is served by chapter 4's
`StreamHandler`, its `Connection` being the session adapter; on
shutdown, open sessions get their last finals and close with 1001.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import parse_qsl, urlsplit

from aioquic.asyncio.server import QuicServer
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration

from ch04_streaming.audio import Encoding
from ch04_streaming.auth import KeyCheck, authorization_key
from ch04_streaming.dialects.dialect import (
    Dialect,
    RequestError,
    StreamDefaults,
)
from ch04_streaming.engine import Recognizer
from ch04_streaming.stream_handler import (
    ConnectionLimits,
    SessionFactory,
    StreamHandler,
)
from ch05_protocols.wt_certificate import PinnedCertificate
from ch05_protocols.wt_protocol import Admitted, Refusal, WebTransportProtocol
from ch05_protocols.wt_session import (
    AudioMode,
    SessionLimits,
    WebTransportSession,
)

log = logging.getLogger("ch05_protocols")
TRANSPORT_PARAMETERS = ("key", "audio")  # the rest is the dialect's
RETRY = {"retry-after": "1"}


@dataclass(frozen=True)
class WebTransportRoute:
    path: str
    dialect: Dialect
    query: Mapping[str, str] = field(default_factory=dict)  # its own,
    # under what the client asks for


@dataclass(frozen=True)
class WebTransportLimits:
    max_sessions: int = 100
    session: SessionLimits = field(default_factory=SessionLimits)
    connection: ConnectionLimits = field(default_factory=ConnectionLimits)
    shutdown_grace_s: float = 10.0
    idle_sweep_s: float = 0.1  # how often idle sessions are looked for
    # Datagrams that come faster than the loop reads them wait in the
    # socket's buffer, and past it are lost: Linux's default (208 KiB)
    # loses a burst of 20 ms frames; the kernel caps what is asked at
    # net.core.rmem_max.
    udp_receive_buffer: int = 4 * 1024 * 1024


@dataclass(eq=False)
class WebTransportServer:
    route: WebTransportRoute
    recognizer: Recognizer  # asked only whether it is ready
    new_session: SessionFactory
    keys: KeyCheck
    defaults: StreamDefaults
    limits: WebTransportLimits
    certificate: PinnedCertificate
    handlers: dict[StreamHandler, asyncio.Task[None]] = field(
        default_factory=dict)
    draining: bool = False
    _server: QuicServer | None = field(default=None, init=False)
    _transport: asyncio.DatagramTransport | None = field(default=None,
                                                         init=False)
    _sweeper: asyncio.Task[None] | None = field(default=None, init=False)
    _no_sessions: asyncio.Event = field(default_factory=asyncio.Event,
                                        init=False)

    def __post_init__(self) -> None:
        self._no_sessions.set()

    # --8<-- [start:webtransport_admission]
    def admit(self, headers: Mapping[str, str]) -> Admitted | Refusal:
        """Decide before the session exists: route, key, room, query."""
        url = urlsplit(headers.get(":path", ""))
        extended_connect = (headers.get(":method") == "CONNECT"
                            and headers.get(":protocol") == "webtransport")
        if not extended_connect or url.path != self.route.path:
            return Refusal(404, "not_found", "WebTransport sessions only:"
                           f" CONNECT {self.route.path}")
        query = dict(parse_qsl(url.query))
        key = query.get("key") or authorization_key(
            headers.get("authorization", ""))
        if not key or not self.keys.verify(key):
            why = "invalid" if key else "missing"
            return Refusal(401, f"{why}_api_key", f"{why} API key: send"
                           " ?key=KEY or Authorization: Bearer KEY")
        if self.draining or not self.recognizer.ready:
            why = "draining" if self.draining else "model loading"
            return Refusal(503, "server_unavailable", why, RETRY)
        if len(self.handlers) >= self.limits.max_sessions:
            return Refusal(503, "at_capacity", f"at capacity:"
                           f" {self.limits.max_sessions} sessions", RETRY)
        return self.parse(query)
    # --8<-- [end:webtransport_admission]

    def parse(self, query: Mapping[str, str]) -> Admitted | Refusal:
        """The session's audio mode, and the dialect's stream request."""
        try:
            mode = AudioMode(query.get("audio", AudioMode.DATAGRAM))
        except ValueError:
            return Refusal(400, "invalid_request",
                           "audio must be datagram or stream")
        own = {name: value for name, value in query.items()
               if name not in TRANSPORT_PARAMETERS}
        try:
            request = self.route.dialect.parse({**self.route.query, **own},
                                               self.defaults)
        except RequestError as error:
            return Refusal(400, "invalid_request", str(error))
        if (request.encoding is not Encoding.LINEAR16
                or request.channels != 1 or request.containers):
            return Refusal(400, "invalid_request", "WebTransport frames"
                           " carry PCM16 mono audio: encoding=linear16")
        return Admitted(request, mode)

    def serve(self, session: WebTransportSession, admitted: Admitted,
              done: Callable[[], None]) -> None:
        """Chapter 4's handler on the session, until it closes."""
        handler = StreamHandler(session, self.route.dialect,
                                admitted.request, self.new_session,
                                self.limits.connection)
        task = asyncio.create_task(self._run(handler, session, done))
        self.handlers[handler] = task
        self._no_sessions.clear()

    async def _run(self, handler: StreamHandler,
                   session: WebTransportSession,
                   done: Callable[[], None]) -> None:
        try:
            closing = await handler.run()
            await session.wait_closed()  # the client's close, or ours
            report = session.report()
            log.info("event=session_closed session=%d code=%s frames=%d"
                     " concealed_s=%.3f errors=%d", session.session_id,
                     closing.code if closing else "client",
                     report.frames, report.concealed_s, report.errors)
        finally:
            done()
            del self.handlers[handler]
            if not self.handlers:
                self._no_sessions.set()

    def configuration(self) -> QuicConfiguration:
        configuration = QuicConfiguration(
            alpn_protocols=H3_ALPN, is_client=False,
            max_datagram_frame_size=65536)  # RFC 9221: datagrams on
        configuration.certificate = self.certificate.certificate
        configuration.private_key = self.certificate.private_key
        return configuration

    async def listen(self, host: str, port: int) -> None:
        """Listen for QUIC on UDP `host`:`port` (0: a free port)."""
        create = partial(WebTransportProtocol, gate=self,
                         limits=self.limits.session)
        loop = asyncio.get_running_loop()
        transport, self._server = await loop.create_datagram_endpoint(
            lambda: QuicServer(configuration=self.configuration(),
                               create_protocol=create),
            local_addr=(host, port))
        self._transport = transport
        udp = transport.get_extra_info("socket")
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                       self.limits.udp_receive_buffer)
        log.info("event=listening udp_receive_buffer=%d",
                 udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        self._sweeper = asyncio.create_task(self._sweep_idle())

    @property
    def port(self) -> int:
        assert self._transport is not None
        port: int = self._transport.get_extra_info("sockname")[1]
        return port

    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(self.limits.idle_sweep_s)
            now = time.monotonic()
            for handler in list(self.handlers):
                handler.sweep(now)

    async def shutdown(self) -> None:
        """Stop admitting, finish open utterances, close with 1001."""
        self.draining = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for handler in list(self.handlers):
            handler.shutdown()
        try:
            async with asyncio.timeout(self.limits.shutdown_grace_s):
                await self._no_sessions.wait()
        except TimeoutError:
            log.warning("shutdown grace over: %d sessions cut",
                        len(self.handlers))
            for task in self.handlers.values():
                task.cancel()
            await asyncio.gather(*self.handlers.values(),
                                 return_exceptions=True)
        if self._server is not None:
            self._server.close()  # every connection, then the socket
