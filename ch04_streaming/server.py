"""The WebSocket server: admission before the upgrade, then a handler.

Chapter 4, "Transport", and chapter 9's auth on upgrade. Every request is
decided before any audio flows: an unknown path is 404, a missing or
wrong key 401, a bad query 400, and a server that is loading, draining or
at its stream cap answers 503 with `Retry-After`, a key or a client
address at its share 429, all with a JSON reason; a client must send
its request within `open_timeout_s`.
A request for any other path is plain HTTP: the probes, the metrics,
the browser page, and what the page asks before it streams
(`page_api.py`).
Admitted connections get a `StreamHandler`, whose session the factory
from the composition root builds; on SIGTERM the server stops admitting,
lets open utterances finish, and closes streams with 1001.
"""

from __future__ import annotations

import asyncio
import http
import logging
import math
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from ch04_streaming.auth import KeyCheck
from ch04_streaming.dialects.dialect import (
    Closing,
    Dialect,
    RequestError,
    StreamDefaults,
    StreamRequest,
)
from ch04_streaming.engine import Recognizer
from ch04_streaming.metrics import ServiceMetrics, probe_loop_lag
from ch04_streaming.page_api import (
    DialectList,
    FixtureLibrary,
    dialect_list,
    page_file,
    page_reply,
)
from ch04_streaming.stream_handler import (
    ConnectionLimits,
    SessionFactory,
    StreamHandler,
)
from ch04_streaming.stream_hooks import (
    NoHooks,
    NoTracker,
    Refusal,
    StreamHooks,
    StreamStart,
    StreamTracker,
)
from ch04_streaming.wire import WireMessage

log = logging.getLogger("ch04_streaming")

@dataclass(frozen=True)
class ServerLimits:
    max_streams: int = 200
    max_streams_per_key: int = 50  # one key cannot take every slot
    # Per client address (chapter 9 sets them): streams open, and
    # connections whose request has not been answered yet.
    max_streams_per_ip: int | None = None
    max_handshakes_per_ip: int | None = None
    open_timeout_s: float = 10.0  # for the request to arrive whole
    max_message_bytes: int = 256 * 1024
    connection: ConnectionLimits = field(default_factory=ConnectionLimits)
    shutdown_grace_s: float = 10.0
    close_timeout_s: float = 5.0  # for the peer to answer our close
    idle_sweep_s: float = 0.1  # how often idle streams are looked for


class SpeechConnection(ServerConnection):
    """A connection that carries its parsed request to the handler, and
    that lets a client stop sending yet still read its results."""

    stream_request: StreamRequest | None = None
    dialect: Dialect | None = None
    tracker: StreamTracker = NoTracker()
    handled: bool = False  # a handler ran for it
    key: str = ""
    peer: str = ""  # the client's address
    handshaking: bool = False  # counted in its address's handshakes
    input_ended: bool = False  # the client shut its sending side
    reply_headers: Mapping[str, str] = {}  # the hooks' additions

    # asyncio keeps a transport open when this returns True; websockets
    # declares None because it never does.
    def eof_received(self) -> bool | None:  # type: ignore[override]
        # Some clients shut their sending side (a TCP half-close) after
        # their last audio and go on reading. End their input after what
        # they sent, with an empty message, and keep the socket open for
        # the finals; websockets alone would drop the stream.
        if not self.handled or self.protocol.state is not State.OPEN:
            return super().eof_received()
        self.input_ended = True
        self.recv_messages.put(Frame(Opcode.BINARY, b""))
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        try:
            async with asyncio.timeout(self.close_timeout):
                await self._close(code, reason)
        except TimeoutError:
            # A client that reads nothing cannot take our close frame
            # either, and websockets waits for room to write it without
            # a deadline: let go of the connection instead.
            self.transport.abort()

    async def _close(self, code: int, reason: str) -> None:
        if not self.input_ended:
            return await super().close(code, reason)
        # The client can no longer answer our close frame: send it and
        # end the connection ourselves rather than wait for a reply.
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
        super().eof_received()  # the end of input, held back until now
        self.transport.close()  # after what is buffered is written
        await asyncio.shield(self.connection_lost_waiter)


class Status(WireMessage):
    type: Literal["Status"] = "Status"
    status: str


class ErrorBody(WireMessage):
    type: Literal["Error"] = "Error"
    status: int
    reason: str


def folded(headers: Headers) -> Headers:
    """One value per header: repeated lines joined with commas, as HTTP
    defines them. A repeated Authorization then fails as a bad key."""
    names = dict.fromkeys(name.lower() for name in headers)
    return Headers((name, ", ".join(headers.get_all(name)))
                   for name in names)


def lower_case(headers: Headers) -> dict[str, str]:
    """One value per header, under its lower-case name."""
    return {name.lower(): value for name, value in folded(headers).items()}


def json_response(status: int, body: WireMessage,
                  headers: Mapping[str, str] | None = None) -> Response:
    payload = body.to_json().encode()
    all_headers = Headers({"Content-Type": "application/json",
                           "Content-Length": str(len(payload))})
    for name, value in (headers or {}).items():
        all_headers[name] = value
    phrase = http.HTTPStatus(status).phrase
    return Response(status, phrase, all_headers, payload)


def error_response(status: int, reason: str,
                   headers: Mapping[str, str] | None = None) -> Response:
    return json_response(status, ErrorBody(status=status, reason=reason),
                         headers)


def not_an_upgrade(request: Request) -> Response | None:
    """426 for plain HTTP to a stream's path: it learns any refusal
    before this one (the browser page asks why it was refused), and
    holds no slot."""
    if "websocket" in request.headers.get("Upgrade", "").lower():
        return None
    return error_response(426, "this path streams over a WebSocket: send"
                          " an upgrade request", {"Upgrade": "websocket"})


# A later chapter's own GET endpoint beside the streams (chapter 9's
# token endpoint): a request in, a response out, before any upgrade.
HttpRoute = Callable[[Request], Awaitable[Response]]


@dataclass
class SpeechServer:
    dialects: Mapping[str, Dialect]
    recognizer: Recognizer  # asked only whether it is ready
    new_session: SessionFactory
    keys: KeyCheck
    defaults: StreamDefaults
    limits: ServerLimits
    hooks: StreamHooks = field(default_factory=NoHooks)
    routes: Mapping[str, HttpRoute] = field(default_factory=dict)
    # The sample recordings the browser page may play (`page_api.py`).
    fixtures: FixtureLibrary = field(default_factory=FixtureLibrary)
    handlers: dict[StreamHandler, asyncio.Task[None]] = field(
        default_factory=dict)
    admitted: set[ServerConnection] = field(default_factory=set)
    streams_per_key: Counter[str] = field(default_factory=Counter)
    streams_per_ip: Counter[str] = field(default_factory=Counter)
    handshakes_per_ip: Counter[str] = field(default_factory=Counter)
    draining: bool = False
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    closes: Counter[tuple[int, str]] = field(default_factory=Counter)
    _server: Server | None = field(default=None, init=False)
    _sweeper: asyncio.Task[None] | None = field(default=None, init=False)
    _lag_probe: asyncio.Task[None] | None = field(default=None, init=False)
    _releases: set[asyncio.Task[None]] = field(default_factory=set,
                                               init=False)
    _no_streams: asyncio.Event = field(default_factory=asyncio.Event,
                                       init=False)
    _dialect_list: DialectList = field(init=False)

    def __post_init__(self) -> None:
        self._no_streams.set()
        self._dialect_list = dialect_list(self.dialects)

    # --8<-- [start:admission]
    async def admit(self, connection: ServerConnection,
                    request: Request) -> Response | None:
        """Decide before the upgrade; None lets the WebSocket open.

        The cheap checks come first, so a refused client costs little:
        the route, the key, readiness, capacity. Only then is a slot
        held and the stream's own request parsed and admitted.
        """
        assert isinstance(connection, SpeechConnection)
        url = urlsplit(request.path)
        dialect = self.dialects.get(url.path)
        if dialect is None:
            return await self.http(request)
        query = dict(parse_qsl(url.query))
        key = dialect.credential(folded(request.headers), query) or ""
        refused = (self.unauthenticated(key, dialect)
                   or self.unavailable()
                   or self.at_capacity(key, connection.peer, dialect)
                   or not_an_upgrade(request))
        if refused is not None:
            return refused
        self.hold(connection, key)  # freed however the socket ends
        return await self.open_stream(connection, request, dialect, query,
                                      key)
    # --8<-- [end:admission]

    def unauthenticated(self, key: str,
                        dialect: Dialect) -> Response | None:
        if key and self.keys.verify(key):
            return None
        reason = "missing API key" if not key else "invalid API key"
        return self.refuse(401, reason, dialect.error_headers(reason))

    def unavailable(self) -> Response | None:
        if not self.draining and self.recognizer.ready:
            return None
        why = "server is draining" if self.draining else "model loading"
        return self.refuse(503, why, {"Retry-After": "1"})

    async def open_stream(self, connection: SpeechConnection,
                          request: Request, dialect: Dialect,
                          query: dict[str, str],
                          key: str) -> Response | None:
        """Parse the stream's request and let the hooks admit it."""
        try:
            parsed = dialect.parse(query, self.defaults)
        except RequestError as error:
            return self.refuse(400, str(error),
                               dialect.error_headers(str(error)))
        start = StreamStart(uuid.uuid4().hex, key, query,
                            lower_case(request.headers),
                            transcribed_channels=parsed.transcribed_channels)
        tracker = await self.hooks.admit(start)  # quotas, metering
        if isinstance(tracker, Refusal):
            return self.refuse_by_hooks(dialect, tracker)
        connection.stream_request, connection.dialect = parsed, dialect
        connection.tracker = tracker
        connection.reply_headers = start.reply_headers
        if connection not in self.admitted:  # the client left meanwhile
            await tracker.ended()
        return None

    def at_capacity(self, key: str, peer: str,
                    dialect: Dialect) -> Response | None:
        """503 when the server is full; 429 when this key holds its
        share (`max_streams_per_key`), as providers cap an account, or
        this address holds its share (`max_streams_per_ip`)."""
        limits = self.limits
        if len(self.admitted) >= limits.max_streams:
            return self.refuse(
                503, f"at capacity: {limits.max_streams} streams",
                {"Retry-After": "1"})
        if self.streams_per_key[key] >= limits.max_streams_per_key:
            return self.too_many(dialect, "this key has"
                                 f" {limits.max_streams_per_key} streams"
                                 " open, its most")
        most = limits.max_streams_per_ip
        if most is not None and self.streams_per_ip[peer] >= most:
            return self.too_many(
                dialect, f"{peer} has {most} streams open, its most")
        return None

    def too_many(self, dialect: Dialect, reason: str) -> Response:
        return self.refuse(429, reason, {
            "Retry-After": "1", **dialect.error_headers(reason)})

    def refuse(self, status: int, reason: str,
               headers: Mapping[str, str]) -> Response:
        self.metrics.rejections.labels(str(status)).inc()
        return error_response(status, reason, headers)

    def refuse_by_hooks(self, dialect: Dialect, refusal: Refusal
                        ) -> Response:
        headers = dialect.error_headers(refusal.reason)
        if refusal.retry_after_s is not None:
            # Retry-After is whole seconds; never round down to zero.
            headers["Retry-After"] = str(max(1, math.ceil(
                refusal.retry_after_s)))
        return self.refuse(refusal.status, refusal.reason, headers)

    async def http(self, request: Request) -> Response:
        """A GET that is not a stream: a later chapter's route, or ours."""
        path = urlsplit(request.path).path
        route = self.routes.get(path)
        if route is not None:
            return await route(request)
        page = await page_reply(request.method, path, self._dialect_list,
                                self.fixtures)
        if page is None:
            return self.plain_http(path)
        if page.status != 200:
            return error_response(page.status, page.reason, page.headers)
        return Response(200, "OK", Headers({
            "Content-Type": page.content_type,
            "Content-Length": str(page.length)}), page.body)

    def plain_http(self, path: str) -> Response:
        if path == "/metrics":
            body = self.metrics.exposition()
            headers = Headers({"Content-Type": CONTENT_TYPE_LATEST,
                               "Content-Length": str(len(body))})
            return Response(200, "OK", headers, body)
        if path == "/healthz":
            return json_response(200, Status(status="ok"))
        if path == "/readyz":
            ready = self.recognizer.ready and not self.draining
            status = "ready" if ready else "not ready"
            return json_response(200 if ready else 503,
                                 Status(status=status))
        page = page_file(path)
        if page is not None:
            body, content_type = page
            headers = Headers({"Content-Type": content_type,
                               "Content-Length": str(len(body))})
            return Response(200, "OK", headers, body)
        return error_response(404, f"no such path: {path}")

    async def after_handshake(self, connection: ServerConnection,
                              request: Request, response: Response) -> None:
        assert isinstance(connection, SpeechConnection)
        self.handshake_over(connection)  # answered, whatever the answer
        if response.status_code == 101:
            for name, value in connection.reply_headers.items():
                response.headers[name] = value
            return
        # Admitted by the hooks, refused later: release what they hold.
        await self.release(connection)

    async def release(self, connection: SpeechConnection) -> None:
        """Free an admitted connection's stream slot and end its hooks'
        tracker: once, however the connection ended."""
        if connection in self.admitted:
            self.admitted.discard(connection)
            self.streams_per_key[connection.key] -= 1
            uncount(self.streams_per_ip, connection.peer)
            await connection.tracker.ended()

    def hold(self, connection: SpeechConnection, key: str) -> None:
        self.admitted.add(connection)
        connection.key = key
        self.streams_per_key[key] += 1
        self.streams_per_ip[connection.peer] += 1
        connection.connection_lost_waiter.add_done_callback(
            lambda _: self.lost(connection))

    def connection_class(self) -> type[SpeechConnection]:
        """Connections that report to this server when they open."""
        opened = self.handshake_started

        class Connection(SpeechConnection):
            def connection_made(self,
                                transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                opened(self)

        return Connection

    def handshake_started(self, connection: SpeechConnection) -> None:
        """A client connected: its handshake is in progress until its
        request is answered or it leaves. Over its address's cap, it is
        answered 429 at once, before any request is read, and closed:
        one address cannot hold more than its share of slow handshakes
        open (`open_timeout_s` bounds how long each may take)."""
        address = connection.remote_address
        peer = connection.peer = str(address[0]) if address else ""
        most = self.limits.max_handshakes_per_ip
        if most is not None and self.handshakes_per_ip[peer] >= most:
            refused = self.refuse(
                429, f"{peer} has {most} handshakes in progress, its most",
                {"Retry-After": "1", "Connection": "close"})
            connection.transport.write(refused.serialize())
            connection.transport.close()
            return
        connection.handshaking = True
        self.handshakes_per_ip[peer] += 1
        connection.connection_lost_waiter.add_done_callback(
            lambda _: self.handshake_over(connection))

    def handshake_over(self, connection: SpeechConnection) -> None:
        if connection.handshaking:
            connection.handshaking = False
            uncount(self.handshakes_per_ip, connection.peer)

    def lost(self, connection: SpeechConnection) -> None:
        """A socket closed. If no handler ever ran for it (the client
        left during the handshake, and websockets calls none), nothing
        else would release its slot: do it here."""
        if connection in self.admitted and not connection.handled:
            task = asyncio.create_task(self.release(connection))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def handle(self, connection: ServerConnection) -> None:
        assert isinstance(connection, SpeechConnection)
        assert connection.stream_request and connection.dialect
        connection.handled = True
        dialect = connection.dialect
        handler = StreamHandler(connection, dialect,
                                connection.stream_request, self.new_session,
                                self.limits.connection,
                                metrics=self.metrics,
                                tracker=connection.tracker)
        task = asyncio.current_task()
        assert task is not None
        self.handlers[handler] = task
        self._no_streams.clear()
        self.metrics.stream_opened(dialect.name)
        closing: Closing | None = None
        try:
            closing = await handler.run()
            label = closing.reason.split(":")[0] if closing else "by client"
            self.closes[(closing.code if closing else 1000, label)] += 1
        finally:
            stats = handler.session.stats
            # A client gone quiet, or on too long, is closed, not failed.
            failed = closing is not None and not handler.ended_by_policy
            self.metrics.stream_closed(
                dialect.name, closing.code if closing and failed else None,
                stats.received_s, stats.decoded_s, stats.interims_skipped,
                stats.dropped_s)
            del self.handlers[handler]
            if not self.handlers:
                self._no_streams.set()
            await self.release(connection)

    async def start(self, host: str, port: int,
                    sock: socket.socket | None = None,
                    ssl: SSLContext | None = None) -> Server:
        """Listen on `host`:`port`, or on `sock`, a socket listening
        already (chapter 3's warm pool binds one for all its workers);
        with `ssl`, over TLS (chapter 9): wss:// and https://."""
        self._server = await serve(
            self.handle, None if sock else host, None if sock else port,
            sock=sock, ssl=ssl,
            process_request=self.admit,
            process_response=self.after_handshake,
            select_subprotocol=select_token_subprotocol,
            create_connection=self.connection_class(),
            open_timeout=self.limits.open_timeout_s,
            max_size=self.limits.max_message_bytes,
            close_timeout=self.limits.close_timeout_s,
            compression=None,  # audio does not compress; save the CPU
        )
        self._sweeper = asyncio.create_task(self._sweep_idle())
        self._lag_probe = asyncio.create_task(
            probe_loop_lag(self.metrics.loop_lag))
        return self._server

    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(self.limits.idle_sweep_s)
            now = time.monotonic()
            for handler in list(self.handlers):
                handler.sweep(now)

    async def no_streams(self) -> None:
        """Return once no stream is open (at once, if none is)."""
        await self._no_streams.wait()

    @property
    def port(self) -> int:
        assert self._server is not None
        socket = next(iter(self._server.sockets))
        port: int = socket.getsockname()[1]
        return port

    # --8<-- [start:graceful_shutdown]
    async def shutdown(self) -> None:
        """Stop admitting, finish open utterances, close with 1001."""
        self.draining = True
        assert self._server is not None
        for task in (self._sweeper, self._lag_probe):
            if task is not None:
                task.cancel()
        # The listener stays open: probes and new clients get a 503
        # saying so, and a load balancer can tell draining from dead.
        for handler in list(self.handlers):
            handler.shutdown()
        try:
            async with asyncio.timeout(self.limits.shutdown_grace_s):
                await self._no_streams.wait()
        except TimeoutError:
            log.warning("shutdown grace over: %d streams cut",
                        len(self.handlers))
            for task in self.handlers.values():
                task.cancel()
        self._server.close()
        await self._server.wait_closed()
    # --8<-- [end:graceful_shutdown]


def uncount(counter: Counter[str], name: str) -> None:
    """One fewer for `name`; at none, it is forgotten, so a counter of
    client addresses does not grow with every address ever seen."""
    counter[name] -= 1
    if counter[name] <= 0:
        del counter[name]


def select_token_subprotocol(
    connection: ServerConnection, offered: object
) -> Subprotocol | None:
    """Browsers send their key as subprotocols `token, KEY` (a token as
    `bearer, TOKEN`; OpenAI's `realtime, openai-insecure-api-key.KEY`):
    answer the kind, which they require to be echoed, never the
    credential itself."""
    protocols = list(offered) if isinstance(offered, list | tuple) else []
    kinds = ("token", "bearer", "realtime")  # "realtime": OpenAI's
    kind = next((p for p in protocols if p in kinds), None)
    return Subprotocol(kind) if kind else None
