"""`python -m ch08_metering serve`: streaming with metering composed in.

Chapter 8, "Metering architecture". The composition root: chapter 4's
streaming server, built with this chapter's hooks (customer lookup,
tier limits, usage events), and the usage ingest API beside it, both
writing to one ledger. The ingest API listens on port 8008; the
streaming endpoints (Deepgram `/v1/listen`, AssemblyAI `/v3/ws`) on
8108; chapter 5's gRPC service (`speech.v1.Speech`) on 8208, behind
the tier-limit interceptor and metered alike. SIGTERM drains the
streams, which cuts their last usage events, and writes every queued
event before the process exits. A request to the ingest API must
arrive in time: its head within 10 s, its body within 30 s
(`--header-timeout-s`, `--body-timeout-s`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from ch04_streaming.app import (
    build_server,
    event_loop_factory,
    run_until_signalled,
)
from ch04_streaming.auth import ApiKeys, load_api_keys, split_keys
from ch04_streaming.engine import Recognizer
from ch04_streaming.server import SpeechServer
from ch04_streaming.settings import parse_settings
from ch05_protocols.app import build_grpc_server
from ch05_protocols.grpc_server import GrpcSpeechServer
from ch05_protocols.interceptors import ScopedInterceptor
from ch05_protocols.settings import GrpcSettings
from ch08_metering.accounts import add_accounts_argument, load_accounts
from ch08_metering.database import add_database_argument, open_engine
from ch08_metering.grpc_limits import LimitInterceptor
from ch08_metering.grpc_metering import GrpcMeteringHooks
from ch08_metering.hooks import MeteringHooks
from ch08_metering.ingest_api import BODY_TIMEOUT_S, create_ingest_app
from ch08_metering.ledger import Ledger, LedgerSchemaError
from ch08_metering.limits import Limiter, build_limiter
from ch08_metering.metering import LedgerWriter
from ch08_metering.request_timeouts import HEADER_TIMEOUT_S, server_config

log = logging.getLogger("ch08_metering")
# Keys of services that report usage for any customer (comma-separated).
SERVICE_KEYS = "METERING_SERVICE_KEYS"
HEADER_TIMEOUT = "METERING_HEADER_TIMEOUT_S"
BODY_TIMEOUT = "METERING_BODY_TIMEOUT_S"


def positive_seconds(text: str) -> float:
    seconds = float(text)
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of seconds")
    return seconds


def add_parser(commands: Any, name: str) -> None:
    env = os.environ
    parser = commands.add_parser(
        name, help="streaming endpoints with metering, and the ingest API",
        description="Chapter 4's streaming endpoints with metering and "
        "tier limits, beside POST /v1/usage/events. Streaming settings "
        "come from CH04_* variables (see python -m ch04_streaming -h).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8008,
                        help="usage API port (default %(default)s)")
    parser.add_argument("--stream-port", type=int, default=8108,
                        help="streaming port (default %(default)s)")
    parser.add_argument("--grpc-port", type=int, default=8208,
                        help="gRPC streaming port (default %(default)s)")
    add_database_argument(parser)
    parser.add_argument("--redis-url", default=env.get("REDIS_URL"),
                        help="shared tier limits (env REDIS_URL; default "
                        "in-process)")
    add_accounts_argument(parser)
    parser.add_argument("--interval-s", type=float, default=60.0,
                        help="usage event interval of a long stream; 0 "
                        "meters every frame (default %(default)s)")
    parser.add_argument("--spill", type=Path,
                        default=Path("build/unwritten-usage.jsonl"),
                        help="where events go if the ledger is down at exit")
    # A string default is parsed by `type` too: a bad variable is an
    # error message, not a traceback.
    parser.add_argument("--header-timeout-s", type=positive_seconds,
                        default=env.get(HEADER_TIMEOUT,
                                        str(HEADER_TIMEOUT_S)),
                        help="ingest API: a request's head must arrive "
                        f"within this (env {HEADER_TIMEOUT}; default "
                        f"{HEADER_TIMEOUT_S:g})")
    parser.add_argument("--body-timeout-s", type=positive_seconds,
                        default=env.get(BODY_TIMEOUT, str(BODY_TIMEOUT_S)),
                        help="ingest API: a request's body must arrive "
                        f"within this (env {BODY_TIMEOUT}; default "
                        f"{BODY_TIMEOUT_S:g})")


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a process that owns its signals: SIGTERM drains
    the streams first, then stops this server (`should_exit`)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class MeteringService:
    speech: SpeechServer
    grpc: GrpcSpeechServer
    recognizer: Recognizer
    ingest: EmbeddedServer
    writer: LedgerWriter
    limiter: Limiter
    ledger: Ledger
    dev_key: str | None
    dev_customer: str | None
    listener: socket.socket
    _api: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self, host: str, stream_port: int,
                    grpc_port: int) -> None:
        self.writer.start()
        await self.speech.start(host, stream_port)
        await self.grpc.start(host, grpc_port)
        self._api = asyncio.create_task(
            self.ingest.serve(sockets=[self.listener]))
        async with asyncio.timeout(10):
            while not self.ingest.started:
                if self._api.done():  # failed at start: say why
                    await self._api
                await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        port: int = self.listener.getsockname()[1]
        return port

    async def stop(self, grace_s: float) -> None:
        # Streams end on both servers at once: their last events cut.
        await asyncio.gather(self.speech.shutdown(), self.grpc.shutdown())
        await self.writer.close(grace_s)
        await self.limiter.aclose()
        self.ingest.should_exit = True
        if self._api is not None:
            await self._api
        self.ledger.engine.dispose()


def build_service(args: argparse.Namespace,
                  env: Mapping[str, str]) -> MeteringService:
    """The composition root: every concrete part is chosen here."""
    keys, dev_key = load_api_keys(env)
    accounts = load_accounts(args.accounts)
    if dev_key and accounts.dev_customer:
        accounts = accounts.with_key(dev_key, accounts.dev_customer)
    ledger = Ledger(open_engine(args.database_url))
    ledger.create()
    writer = LedgerWriter(ledger, lambda: round(time.time() * 1000),
                          spill=args.spill)
    limiter = build_limiter(args.redis_url)
    hooks = MeteringHooks(accounts, limiter, writer.put, args.interval_s)
    settings = parse_settings([], env)
    built = build_server(settings, keys, hooks)
    # One engine serves both: gRPC streams share the WebSocket's model.
    grpc_built = build_grpc_server(
        GrpcSettings(speech=settings, env=env), keys,
        GrpcMeteringHooks(limiter, writer.put, args.interval_s),
        interceptors=[ScopedInterceptor(LimitInterceptor(accounts,
                                                         limiter))],
        recognizer=built.recognizer)
    listener = socket.create_server((args.host, args.port))
    services = ApiKeys.of(*split_keys(env.get(SERVICE_KEYS, "")))
    app = create_ingest_app(ledger, accounts, keys, time.time, services,
                            body_timeout_s=args.body_timeout_s)
    config = server_config(app, args.header_timeout_s)
    return MeteringService(built.server, grpc_built.server,
                           built.recognizer,
                           EmbeddedServer(config), writer, limiter, ledger,
                           dev_key, accounts.dev_customer, listener)


async def serve(args: argparse.Namespace) -> int:
    service = build_service(args, os.environ)
    await service.start(args.host, args.stream_port, args.grpc_port)
    api = f"http://{args.host}:{service.port}"
    streams = f"ws://{args.host}:{service.speech.port}"
    if service.dev_key:
        print(f"SPEECH_API_KEYS is not set; development key: "
              f"{service.dev_key} (customer: {service.dev_customer})",
              flush=True)
    print(f"streaming on {streams} (/v1/listen, /v3/ws), metered",
          flush=True)
    print(f"gRPC streaming on grpc://{args.host}:{service.grpc.port}"
          " (speech.v1.Speech), metered", flush=True)
    print(f"listening on {api} (POST /v1/usage/events)", flush=True)
    await run_until_signalled(service.recognizer, service.speech,
                              lambda: service.stop(grace_s=10.0))
    log.info("event=stopped events_written=%d", service.writer.written)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(serve(args))
    except LedgerSchemaError as error:  # found before anything started
        print(f"error: {error}", file=sys.stderr)
        return 2
