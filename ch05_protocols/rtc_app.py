"""The composition root of the WebRTC service: where its parts are picked.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
`create_rtc_app` composes chapter 4 through its composition root (the
engine on its simulated device, the decode scheduler, each stream's
session), picks the dialect the calls speak (OpenAI's realtime events,
the audio coming from the track), and wires the signalling
routes, the client secrets, the calls and chapter 4's browser page
(`rtc_page.py`) into one FastAPI app. Every
call's stream drops stale audio rather than buffer it (chapter 4's
`DropStaleAudio`): RTP cannot be paused, so a reader that waited would
only queue audio in the receiver. `serve` runs the app with uvicorn
until SIGTERM, then drains the calls. Tests pass their own engine,
keys, clock and dialect through `RtcParts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import uvicorn
from fastapi import FastAPI

from ch04_streaming.app import (
    build_device,
    build_recognizer,
    fixtures_dir,
    session_factory,
    vad_config,
)
from ch04_streaming.auth import KeyCheck, load_api_keys
from ch04_streaming.backpressure import Backpressure
from ch04_streaming.dialects.dialect import (
    Dialect,
    StreamDefaults,
    StreamRequest,
)
from ch04_streaming.dialects.openai_realtime import OpenAIRealtime
from ch04_streaming.engine import Recognizer
from ch04_streaming.page_api import FixtureLibrary
from ch04_streaming.scheduler import DirectScheduler
from ch04_streaming.stream_handler import (
    Connection,
    ConnectionLimits,
    SessionFactory,
    StreamHandler,
)
from ch05_protocols.client_secrets import EphemeralKeys
from ch05_protocols.media_dialects import DIALECTS
from ch05_protocols.rtc_call import CallLimits, HandlerFactory
from ch05_protocols.rtc_calls import RtcCalls
from ch05_protocols.rtc_page import page_router
from ch05_protocols.rtc_settings import RtcSettings
from ch05_protocols.rtc_signalling import (
    Credentials,
    add_signalling,
    signalling_router,
)

log = logging.getLogger("ch05_protocols")

@dataclass(frozen=True)
class RtcParts:
    """What a test may put in place of the real parts."""

    recognizer: Recognizer | None = None
    keys: KeyCheck | None = None
    dialect: Dialect | None = None
    secrets_clock: Callable[[], float] = time.time


def call_request(dialect: Dialect, defaults: StreamDefaults,
                 query: Mapping[str, str]) -> StreamRequest:
    request = dialect.parse(query, defaults)
    return replace(request, backpressure=Backpressure.DROP)


def handler_factory(dialect: Dialect, request: StreamRequest,
                    new_session: SessionFactory,
                    limits: ConnectionLimits) -> HandlerFactory:
    """Chapter 4's handler, one per call, on the call's connection."""

    def new_handler(connection: Connection) -> StreamHandler:
        return StreamHandler(connection, dialect, request, new_session,
                             limits)

    return new_handler


def create_rtc_app(settings: RtcSettings,
                   parts: RtcParts | None = None) -> FastAPI:
    parts = parts or RtcParts()
    keys, dev_key = parts.keys, None
    if keys is None:
        keys, dev_key = load_api_keys(settings.env)
    speech = settings.speech
    recognizer = parts.recognizer or build_recognizer(
        speech, build_device(speech))
    limits = ConnectionLimits(
        send_queue=speech.send_queue,
        max_pending_audio_s=speech.max_pending_audio_s,
        max_session_s=speech.max_session_s)
    defaults = StreamDefaults(vad=vad_config(speech),
                              idle_timeout_s=speech.idle_timeout_s)
    # OpenAI's realtime events (or Deepgram's), with the audio from the
    # call's track.
    make, query = DIALECTS[settings.dialect]
    dialect = parts.dialect or make()
    new_handler = handler_factory(
        dialect, call_request(dialect, defaults, query),
        session_factory(DirectScheduler(recognizer), limits), limits)
    calls = RtcCalls(new_handler, lambda: recognizer.ready,
                     settings.max_calls,
                     CallLimits(connect_timeout_s=settings.connect_timeout_s))
    credentials = Credentials(keys, EphemeralKeys(
        settings.max_client_secrets, parts.secrets_clock))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        calls.start()
        warmup = asyncio.create_task(recognizer.start())
        yield
        log.info("event=draining calls=%d", len(calls.calls))
        warmup.cancel()
        await calls.shutdown(settings.shutdown_grace_s)
        await recognizer.stop()

    app = FastAPI(title="Speech over WebRTC (chapter 5)",
                  lifespan=lifespan)
    add_signalling(app, signalling_router(
        calls, credentials, settings.max_offer_bytes,
        takes_sessions=isinstance(dialect, OpenAIRealtime)), calls)
    # Chapter 4's page, its audio sent as the call's track.
    app.include_router(page_router(
        dialect, FixtureLibrary.load(fixtures_dir(speech))))
    app.state.calls, app.state.dev_key = calls, dev_key
    return app


class Server(uvicorn.Server):
    """uvicorn, with this service's own signal handling: a drained
    service exits 0 instead of dying of the signal again."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: RtcSettings) -> int:
    """`python -m ch05_protocols rtc`: listen, serve until signalled."""
    app = create_rtc_app(settings)
    # Bound before uvicorn starts: with --port 0 the line below names
    # the port the system chose, for the tools that read it.
    listener = socket.create_server((settings.host, settings.port))
    url = f"http://{settings.host}:{listener.getsockname()[1]}"
    if app.state.dev_key:
        print(f"SPEECH_API_KEYS is not set; development key:"
              f" {app.state.dev_key} (browser: {url}/?key="
              f"{app.state.dev_key})", flush=True)
    print(f"listening on {url} (POST /v1/realtime/calls,"
          " /v1/realtime/client_secrets, browser page /)", flush=True)
    server = Server(uvicorn.Config(
        app, log_level="warning",
        # Calls drain in the app's shutdown, after uvicorn's own grace.
        timeout_graceful_shutdown=round(settings.shutdown_grace_s)))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # A first signal drains; a second stops at once.
        loop.add_signal_handler(signum, server.handle_exit, signum, None)
    await server.serve(sockets=[listener])
    log.info("event=stopped")
    return 0
