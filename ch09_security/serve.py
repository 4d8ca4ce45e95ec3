"""`python -m ch09_security serve`: chapter 4's streams behind real
credentials, and the endpoints that grant short-lived tokens.

Chapter 9, "Authentication for streaming connections", "API key
management" and "Securing audio data ... in transit (TLS 1.3)". The
composition root: chapter 4's streaming server (the Deepgram and
AssemblyAI dialects, port 8009), whose credential check is this
chapter's `Credentials` (keys from `keys create`, tokens those keys
grant, and `SPEECH_API_KEYS` for development), whose hooks are the
`StreamGuard`, and whose GET routes serve AssemblyAI's `/v3/token` and
the JWKS; beside it, this chapter's HTTP API (port 8109: Deepgram's
`POST /v1/auth/grant`, OAuth2's `POST /oauth/token`, and chapter 7's
transcription API behind the `transcribe` scope), and the `KeyWatch`
that ends a revoked key's streams within `--poll-s` on every replica
sharing the database. Every dialect is wrapped twice: to redact what
the stream's query asks for (PII in interims and finals), and to keep
nothing of a stream unless it asks with `retain=true` (then sealed for
its owner in the same database). The abuse limits (`abuse_settings.py`)
take pages' origins, keys' rates of new streams and chapter 4's
per-address caps from flags. With `--grpc-port`, chapter 5's gRPC
service listens too, behind the same credentials, on the same engine.
With `--tls-cert` and `--tls-key`, every port speaks TLS 1.3 only:
wss://, https://, and gRPC through a TLS terminator in front of a
loopback gRPC port (`grpc_port.py`; mutual TLS with `--tls-ca`).
Other streaming settings come from `CH04_*` variables.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import uvicorn
from fastapi import FastAPI

from ch04_streaming.app import (
    build_server,
    dialects,
    event_loop_factory,
    run_until_signalled,
)
from ch04_streaming.auth import ApiKeys, split_keys
from ch04_streaming.dialects.dialect import Dialect
from ch04_streaming.engine import Recognizer
from ch04_streaming.server import SpeechServer
from ch04_streaming.settings import Settings, parse_settings
from ch05_protocols.app import build_grpc_server
from ch05_protocols.grpc_server import GrpcSpeechServer
from ch05_protocols.settings import GrpcSettings
from ch07_api.app import Parts, create_app
from ch07_api.settings import parse_api_settings
from ch08_metering.serve import EmbeddedServer
from ch09_security import tls
from ch09_security.abuse_settings import (
    abuse_limits,
    add_abuse_flags,
    server_caps,
)
from ch09_security.audio_cli import open_vault
from ch09_security.grpc_port import GrpcPort, open_grpc_port
from ch09_security.http_api import create_http_app
from ch09_security.key_watch import KeyWatch
from ch09_security.keys_cli import add_store_argument, open_store
from ch09_security.origins import own_origins
from ch09_security.recording_keeper import Keeper, RecordingKeeper
from ch09_security.redacting_dialect import redacting_dialects
from ch09_security.retaining_dialect import retaining_dialects
from ch09_security.security_layer import SecurityLayer, security_layer
from ch09_security.server_secret import SecretError
from ch09_security.tls import ServerTls, TlsConfigError

log = logging.getLogger("ch09_security")
DEFAULT_PORT = 8009
DEFAULT_API_PORT = 8109
GRPC_PORT = 8209  # the port the README and the certs command suggest


@dataclass
class SecuredService:
    speech: SpeechServer
    listener: socket.socket  # the streaming port, bound already
    recognizer: Recognizer
    watch: KeyWatch
    keeper: RecordingKeeper
    api: EmbeddedServer
    api_listener: socket.socket
    grpc: GrpcSpeechServer | None = None  # with --grpc-port
    tls: ServerTls | None = None  # with --tls-cert and --tls-key
    grpc_port: GrpcPort | None = None  # once started

    @property
    def api_port(self) -> int:
        port: int = self.api_listener.getsockname()[1]
        return port

    async def start(self, host: str, port: int,
                    grpc_port: int | None) -> None:
        """The streaming port, and the gRPC port if there is one."""
        context = self.tls.context if self.tls else None
        await self.speech.start(host, port, sock=self.listener,
                                ssl=context)
        if self.grpc is not None and grpc_port is not None:
            self.grpc_port = await open_grpc_port(
                self.grpc, host, grpc_port,
                self.tls.grpc if self.tls else None)

    async def shutdown(self) -> None:
        """Both streaming servers drain at once."""
        drains = [self.speech.shutdown()]
        if self.grpc_port is not None:
            drains.append(self.grpc_port.shutdown())
        await asyncio.gather(*drains)


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="the streaming endpoints behind managed credentials",
        description="Chapter 4's streaming endpoints (/v1/listen, "
        "/v3/ws) behind API keys and short-lived tokens, with the token "
        "endpoints; a stream is kept, encrypted, only if its query says "
        "retain=true. Other streaming settings come from CH04_* "
        "variables.")
    add_service_arguments(parser, DEFAULT_PORT, DEFAULT_API_PORT)
    parser.add_argument("--grpc-port", type=int,
                        help="serve chapter 5's gRPC service on this port "
                        f"too, e.g. {GRPC_PORT} (default: no gRPC)")


def add_service_arguments(parser: argparse.ArgumentParser, port: int,
                          api_port: int) -> None:
    """The flags of a secured service: its ports, its key store, the
    page's tokens, revocation polling, abuse limits and TLS."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port,
                        help="streaming port (default %(default)s)")
    parser.add_argument("--api-port", type=int, default=api_port,
                        help="HTTP API port (default %(default)s)")
    add_store_argument(parser)
    parser.add_argument("--page-tokens-for",
                        default=os.environ.get("PAGE_TOKENS_FOR"),
                        metavar="KEY_ID",
                        help="serve the browser page 60 s tokens under "
                        "this key (env PAGE_TOKENS_FOR; default off: the "
                        "page asks for a key)")
    parser.add_argument("--poll-s", type=float, default=0.5,
                        help="how often revocations are looked for "
                        "(default %(default)s)")
    add_abuse_flags(parser, os.environ)
    tls.add_arguments(parser, os.environ)


def api_config(app: FastAPI, server_tls: ServerTls | None
               ) -> uvicorn.Config:
    """uvicorn for the HTTP API, with the streaming port's context
    when there is one: the same certificate, the same TLS 1.3 floor."""
    if server_tls is None:
        return uvicorn.Config(app, log_level="warning")
    context = server_tls.context

    def same_context(config: uvicorn.Config,
                     default: Callable[[], ssl.SSLContext]
                     ) -> ssl.SSLContext:
        return context

    return uvicorn.Config(app, log_level="warning",
                          ssl_context_factory=same_context)


def grpc_beside(settings: Settings, env: Mapping[str, str],
                layer: SecurityLayer, recognizer: Recognizer
                ) -> GrpcSpeechServer:
    """Chapter 5's gRPC service on the same engine, behind the same
    credentials and guard (TLS is the terminator's, in front)."""
    return build_grpc_server(
        GrpcSettings(speech=settings, env=env), layer.credentials,
        layer.guard, recognizer=recognizer).server


def guarded_dialects(settings: Settings, keeper: Keeper
                     ) -> dict[str, Dialect]:
    """Chapter 4's dialects, redacting and keeping only what a stream
    asks for. Retention sits inside redaction: what is kept is what
    the client saw."""
    return redacting_dialects(retaining_dialects(dialects(settings),
                                                 keeper))


def transcription_api(env: Mapping[str, str],
                      layer: SecurityLayer) -> FastAPI:
    """Chapter 7's API, taking this chapter's credentials."""
    return create_app(parse_api_settings([], env),
                      Parts(keys=layer.credentials))


# --8<-- [start:secured_root]
def build_service(args: argparse.Namespace,
                  env: Mapping[str, str]) -> SecuredService:
    """The composition root: chapter 4's server (and chapter 5's)
    inside this chapter's security layer, the HTTP API beside it, and
    every port over TLS when the flags name a certificate."""
    files = tls.tls_files(args)
    server_tls = tls.load_server_tls(files) if files else None
    store = open_store(args.database_url)
    development = ApiKeys.of(*split_keys(env.get("SPEECH_API_KEYS", "")))
    listener = socket.create_server((args.host, args.port))
    own = own_origins(args.host, listener.getsockname()[1])
    layer = security_layer(store, development, args.poll_s,
                           args.page_tokens_for, abuse_limits(args, own))
    settings = replace(parse_settings([], env), host=args.host,
                       port=args.port, **server_caps(args))
    keeper = RecordingKeeper(open_vault(store.engine, env))
    built = build_server(settings, keys=layer.credentials,
                         hooks=layer.guard, routes=layer.routes,
                         more_dialects=guarded_dialects(settings, keeper))
    grpc = (grpc_beside(settings, env, layer, built.recognizer)
            if args.grpc_port is not None else None)
    api = EmbeddedServer(api_config(
        create_http_app(layer, transcription_api(env, layer)), server_tls))
    api_listener = socket.create_server((args.host, args.api_port))
    return SecuredService(built.server, listener, built.recognizer,
                          layer.watch, keeper, api, api_listener, grpc,
                          server_tls)
# --8<-- [end:secured_root]


async def serve(args: argparse.Namespace) -> int:
    service = build_service(args, os.environ)
    watching = asyncio.create_task(service.watch.run())
    api = asyncio.create_task(
        service.api.serve(sockets=[service.api_listener]))
    await service.start(args.host, args.port, args.grpc_port)
    http = "https" if service.tls else "http"
    if service.grpc_port is not None:
        print(grpc_banner(args.host, service.grpc_port.port, service.tls),
              flush=True)
    print(f"API on {http}://{args.host}:{service.api_port} "
          "(POST /v1/auth/grant, GET /v3/token, /.well-known/jwks.json)",
          flush=True)
    print(f"listening on {http}://{args.host}:{service.speech.port} "
          "(Deepgram /v1/listen, AssemblyAI /v3/ws and /v3/token) behind "
          "managed keys; make one: python -m ch09_security keys create "
          "--owner NAME", flush=True)
    try:
        await run_until_signalled(service.recognizer, service.speech,
                                  service.shutdown)
    finally:
        service.api.should_exit = True
        service.watch.stop()  # a poll under way finishes first
        await asyncio.gather(watching, api, return_exceptions=True)
        await service.watch.flush_uses()
        await service.keeper.settled()  # streams kept at their close
        service.watch.verifier.store.engine.dispose()
    return 0


def grpc_banner(host: str, port: int, server_tls: ServerTls | None
                ) -> str:
    if server_tls is None:
        return f"gRPC streaming on grpc://{host}:{port} (speech.v1.Speech)"
    clients = ", client certificates required" if server_tls.mutual else ""
    return (f"gRPC streaming on grpcs://{host}:{port} (speech.v1.Speech;"
            f" TLS 1.3{clients})")


def run(args: argparse.Namespace) -> int:
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(serve(args))
    except (SecretError, TlsConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
