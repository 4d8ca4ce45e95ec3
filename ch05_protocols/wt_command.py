"""`python -m ch05_protocols wt`: WebTransport ingest, and its root.

Chapter 5, "WebTransport: QUIC datagrams". `build_webtransport_server`
is the service's composition root: chapter 4's engine, scheduler,
stream defaults and per-stream sessions, its API keys, a certificate
made for the run, and the dialect served at `/v1/realtime`, OpenAI's
realtime transcription events with the audio beside them. The command
prints the certificate's SHA-256 (base64 for a page's
`serverCertificateHashes`, hex for `wt_client --cert-hash`) and the
URL, then serves on UDP until SIGTERM or Ctrl-C. Flags (and
`CH05_WT_<NAME>` variables) set the transport's limits; the engine's
settings are chapter 4's `CH04_<NAME>` variables.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from ch04_streaming.app import (
    build_device,
    build_recognizer,
    session_factory,
    vad_config,
)
from ch04_streaming.auth import KeyCheck, load_api_keys
from ch04_streaming.dialects.dialect import StreamDefaults
from ch04_streaming.engine import Recognizer
from ch04_streaming.scheduler import DirectScheduler
from ch04_streaming.settings import Settings, option, parse_settings
from ch04_streaming.settings import add_flags as add_setting_flags
from ch04_streaming.stream_handler import ConnectionLimits
from ch05_protocols.app import run_until_signalled
from ch05_protocols.media_dialects import DIALECTS
from ch05_protocols.wt_certificate import PinnedCertificate, make_certificate
from ch05_protocols.wt_server import (
    WebTransportLimits,
    WebTransportRoute,
    WebTransportServer,
)
from ch05_protocols.wt_session import SessionLimits

log = logging.getLogger("ch05_protocols")
PATH = "/v1/realtime"


@dataclass(frozen=True)
class WtSettings:
    host: str = option("127.0.0.1", "address to listen on (UDP)")
    port: int = option(4433, "UDP port to listen on")
    cert_dir: str = option(
        "", "directory to write the run's cert.pem and key.pem to"
        " (empty: kept in memory)")
    max_sessions: int = option(100, "concurrent sessions before 503")
    reorder_frames: int = option(
        3, "later frames a missing datagram is waited for before"
        " silence takes its place")
    max_waiting_frames: int = option(
        250, "frames and events waiting to be read before datagram audio"
        " is dropped (a stream's closes the session)")
    close_timeout_s: float = option(
        5.0, "seconds a client has to close its session once its results"
        " have ended, before the server closes it")
    shutdown_grace_s: float = option(
        10.0, "seconds to finish sessions on SIGTERM")
    dialect: str = option(
        "realtime", "the events sessions speak: realtime (OpenAI's) or"
        " deepgram (Deepgram's Results, each with the stream time it"
        " covers)")
    speech: Settings = field(default_factory=Settings)  # chapter 4's
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


def parse_wt_settings(argv: Sequence[str],
                      env: Mapping[str, str]) -> WtSettings:
    parser = argparse.ArgumentParser(
        prog="python -m ch05_protocols wt",
        description="Speech recognition over WebTransport (HTTP/3):"
        " audio as QUIC datagrams or on a stream. Engine settings come"
        " from CH04_* variables (see python -m ch04_streaming -h).")
    add_setting_flags(parser, WtSettings, "CH05_WT", env)
    args = parser.parse_args(argv)
    if args.reorder_frames < 0 or args.max_waiting_frames < 1:
        parser.error("--reorder-frames must be 0 or more and"
                     " --max-waiting-frames 1 or more")
    if args.dialect not in DIALECTS:
        parser.error(f"--dialect must be one of {', '.join(DIALECTS)}")
    flags = {f.name: getattr(args, f.name) for f in fields(WtSettings)
             if "help" in f.metadata}
    return WtSettings(**flags, speech=parse_settings([], env), env=env)


def served_route(dialect: str = "realtime") -> WebTransportRoute:
    """OpenAI's realtime transcription events at `/v1/realtime` (or
    Deepgram's), the audio beside them as PCM16 at 24 kHz."""
    make, query = DIALECTS[dialect]
    return WebTransportRoute(PATH, make(), query)


def webtransport_limits(settings: WtSettings) -> WebTransportLimits:
    engine = settings.speech
    return WebTransportLimits(
        max_sessions=settings.max_sessions,
        session=SessionLimits(max_waiting=settings.max_waiting_frames,
                              reorder_depth=settings.reorder_frames,
                              close_timeout_s=settings.close_timeout_s),
        connection=ConnectionLimits(
            send_queue=engine.send_queue,
            max_pending_audio_s=engine.max_pending_audio_s,
            max_session_s=engine.max_session_s),
        shutdown_grace_s=settings.shutdown_grace_s)


@dataclass(frozen=True)
class BuiltWebTransport:
    server: WebTransportServer
    recognizer: Recognizer
    dev_key: str | None  # set when SPEECH_API_KEYS was empty


def build_webtransport_server(
    settings: WtSettings, certificate: PinnedCertificate,
    keys: KeyCheck | None = None, recognizer: Recognizer | None = None,
    route: WebTransportRoute | None = None,
) -> BuiltWebTransport:
    """The WebTransport service; tests pass their keys, engine, route."""
    dev_key = None
    if keys is None:
        keys, dev_key = load_api_keys(settings.env)
    engine = settings.speech
    if recognizer is None:
        recognizer = build_recognizer(engine, build_device(engine))
    limits = webtransport_limits(settings)
    server = WebTransportServer(
        route or served_route(settings.dialect), recognizer,
        session_factory(DirectScheduler(recognizer), limits.connection),
        keys, StreamDefaults(vad=vad_config(engine),
                             idle_timeout_s=engine.idle_timeout_s),
        limits, certificate)
    return BuiltWebTransport(server, recognizer, dev_key)


async def serve(settings: WtSettings) -> int:
    hosts = [settings.host, "localhost"]
    certificate = make_certificate(hosts, datetime.now(UTC))
    if settings.cert_dir:
        certificate.write(Path(settings.cert_dir))
    built = build_webtransport_server(settings, certificate)
    server = built.server
    await server.listen(settings.host, settings.port)
    if built.dev_key:
        print(f"SPEECH_API_KEYS is not set; development key:"
              f" {built.dev_key}", flush=True)
    print(f"certificate sha256 (base64): {certificate.sha256_base64}\n"
          f"certificate sha256 (hex): {certificate.sha256_hex}",
          flush=True)
    print(f"listening on https://{settings.host}:{server.port}{PATH}"
          " (WebTransport, HTTP/3 over UDP)", flush=True)
    await run_until_signalled(built.recognizer, server.shutdown)
    log.info("event=stopped")
    return 0


def main(argv: Sequence[str] = ()) -> int:
    """`python -m ch05_protocols wt [flags]`."""
    settings = parse_wt_settings(list(argv), dict(os.environ))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(serve(settings))
