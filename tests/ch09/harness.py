"""Chapter 4's server in this process, inside chapter 9's security layer.

`secured` starts it with the layer `serve.py` builds (credentials,
stream guard, token routes, a running `KeyWatch` that polls every
0.1 s) on a key store at `url`, on the real clock: tests of streams
wait for messages, never for simulated time. Its abuse limits are
`serve`'s defaults, unless a test passes its own; the one page origin
it allows is `PAGE`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ssl import SSLContext

import uvicorn

from ch04_streaming.auth import ApiKeys
from ch04_streaming.server import ServerLimits
from ch07_api import database
from ch08_metering.serve import EmbeddedServer
from ch09_security.abuse_limits import AbuseLimits, NewStreamRate
from ch09_security.abuse_settings import (
    MAX_HANDSHAKES_PER_IP,
    MAX_STREAMS_PER_IP,
)
from ch09_security.http_api import create_http_app
from ch09_security.key_store import KeyHasher, KeyStore, Scope
from ch09_security.keys_cli import now_ms
from ch09_security.origins import OriginAllowlist, own_origins
from ch09_security.security_layer import SecurityLayer, security_layer
from tests.ch04.harness import Running, Start
from tests.ch09.conftest import SECRET

DEV_KEY = "dev-key-from-the-environment"
PAGE = "https://app.example.com"  # a customer's page that may stream
SERVED_LIMITS = ServerLimits(max_streams_per_ip=MAX_STREAMS_PER_IP,
                             max_handshakes_per_ip=MAX_HANDSHAKES_PER_IP)


@dataclass
class Secured:
    running: Running
    store: KeyStore
    layer: SecurityLayer
    api: str  # the HTTP API's base URL


@asynccontextmanager
async def http_api(layer: SecurityLayer) -> AsyncIterator[str]:
    """This chapter's HTTP API on a free port, as `serve` runs it."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = EmbeddedServer(uvicorn.Config(create_http_app(layer),
                                                log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving


@asynccontextmanager
async def secured(start_server: Start, url: str,
                  page_owner: str | None = None,
                  limits: ServerLimits = SERVED_LIMITS,
                  abuse: AbuseLimits | None = None,
                  ssl: SSLContext | None = None,
                  ) -> AsyncIterator[Secured]:
    """With `page_owner`, a key of theirs serves the page's tokens; the
    pages allowed are `PAGE` and the service's own, unless `abuse`
    says otherwise."""
    store = KeyStore(database.open_engine(url), KeyHasher(SECRET), now_ms)
    store.create_schema()
    page_key = (store.create(page_owner, [Scope.LISTEN]).record.key_id
                if page_owner else None)
    listener = socket.create_server(("127.0.0.1", 0))
    own = own_origins("127.0.0.1", listener.getsockname()[1])
    abuse = abuse or AbuseLimits(OriginAllowlist(own | {PAGE}),
                                 NewStreamRate())
    layer = security_layer(store, ApiKeys.of(DEV_KEY), 0.1, page_key,
                           abuse)
    watching = asyncio.create_task(layer.watch.run())
    try:
        async with start_server(key_check=layer.credentials,
                                hooks=layer.guard, routes=layer.routes,
                                limits=limits, sock=listener,
                                ssl=ssl) as running, \
                http_api(layer) as api:
            yield Secured(running, store, layer, api)
    finally:
        layer.watch.stop()  # a poll under way finishes first
        await asyncio.gather(watching, return_exceptions=True)
        store.engine.dispose()
