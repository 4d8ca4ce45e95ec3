"""`python -m ch09_security serve`: chapter 4's streams behind real keys.

Chapter 9, "Authentication for streaming connections" and "API key
management". The composition root: chapter 4's streaming server (the
Deepgram and AssemblyAI dialects), whose key check is this chapter's
`KeyVerifier` (keys from `keys create`, plus `SPEECH_API_KEYS` for
development), whose hooks are the `StreamGuard` (scopes, use counts,
streams followed by key), whose dialects keep nothing of a stream
unless it asks with `retain=true` (`RetainingDialect`: sealed for its
owner in the same database), and beside it the `KeyWatch` that ends a
revoked key's streams within `--poll-s` on every replica sharing the
database. Streaming settings come from `CH04_*` variables.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ch04_streaming.app import (
    build_server,
    dialects,
    event_loop_factory,
    run_until_signalled,
)
from ch04_streaming.auth import ApiKeys, split_keys
from ch04_streaming.engine import Recognizer
from ch04_streaming.server import SpeechServer
from ch04_streaming.settings import parse_settings
from ch09_security.audio_cli import open_vault
from ch09_security.key_verifier import KeyVerifier
from ch09_security.key_watch import KeyWatch, RunningStreams
from ch09_security.keys_cli import open_store
from ch09_security.recording_keeper import RecordingKeeper
from ch09_security.retaining_dialect import retaining_dialects
from ch09_security.server_secret import SecretError
from ch09_security.stream_guard import StreamGuard

log = logging.getLogger("ch09_security")
DEFAULT_PORT = 8009


@dataclass
class SecuredService:
    speech: SpeechServer
    recognizer: Recognizer
    watch: KeyWatch
    keeper: RecordingKeeper


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="the streaming endpoints behind managed API keys",
        description="Chapter 4's streaming endpoints (/v1/listen, "
        "/v3/ws) behind API keys with scopes and revocation; a stream "
        "is kept, encrypted, only if its query says retain=true. "
        "Streaming settings come from CH04_* variables.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="streaming port (default %(default)s)")
    parser.add_argument("--database-url",
                        default=os.environ.get("DATABASE_URL"),
                        help="key store (env DATABASE_URL; default SQLite "
                        "build/security.sqlite3)")
    parser.add_argument("--poll-s", type=float, default=0.5,
                        help="how often revocations are looked for "
                        "(default %(default)s)")


# --8<-- [start:secured_root]
def build_service(args: argparse.Namespace,
                  env: Mapping[str, str]) -> SecuredService:
    """The composition root: chapter 4's server, this chapter's keys,
    and its dialects keeping only what a stream asks to have kept."""
    store = open_store(args.database_url)
    development = ApiKeys.of(*split_keys(env.get("SPEECH_API_KEYS", "")))
    verifier = KeyVerifier(store, development)
    streams = RunningStreams()
    settings = replace(parse_settings([], env), host=args.host,
                       port=args.port)
    keeper = RecordingKeeper(open_vault(store.engine, env))
    built = build_server(settings, keys=verifier,
                         hooks=StreamGuard(verifier, streams),
                         more_dialects=retaining_dialects(
                             dialects(settings), keeper))
    watch = KeyWatch(verifier, streams, poll_s=args.poll_s)
    return SecuredService(built.server, built.recognizer, watch, keeper)
# --8<-- [end:secured_root]


async def serve(args: argparse.Namespace) -> int:
    service = build_service(args, os.environ)
    watching = asyncio.create_task(service.watch.run())
    await service.speech.start(args.host, args.port)
    print(f"listening on http://{args.host}:{service.speech.port} "
          "(Deepgram /v1/listen, AssemblyAI /v3/ws) behind managed keys; "
          "make one: python -m ch09_security keys create --owner NAME",
          flush=True)
    try:
        await run_until_signalled(service.recognizer, service.speech,
                                  service.speech.shutdown)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await service.watch.flush_uses()
        await service.keeper.settled()  # streams kept at their close
        service.watch.verifier.store.engine.dispose()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(serve(args))
    except SecretError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
