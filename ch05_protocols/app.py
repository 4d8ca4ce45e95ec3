"""The composition root of the gRPC service: the one place that picks
concrete parts.

Chapter 5, "gRPC bidirectional streaming". `build_grpc_server` composes
chapter 4 through its composition root (the engine on its simulated
device, the decode scheduler, each stream's session), adds this
chapter's limits, the API-key interceptor, health and reflection, and
mounts the recognition services listed in `recognition_services`.
Chapter 8 passes its hooks, its tier-limit interceptor and the engine
it already runs; tests pass fakes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import grpc

from ch04_streaming.app import (
    build_device,
    build_recognizer,
)
from ch04_streaming.auth import KeyCheck, load_api_keys
from ch04_streaming.dialects.dialect import StreamDefaults
from ch04_streaming.engine import Recognizer
from ch04_streaming.scheduler import DecodeScheduler, DirectScheduler
from ch04_streaming.session import EveryChunk, InterimCadence
from ch04_streaming.stream_handler import ConnectionLimits
from ch04_streaming.stream_hooks import NoHooks, StreamHooks
from ch04_streaming.vad import VadConfig
from ch05_protocols.deadline import deadline_sessions
from ch05_protocols.google_speech import SERVICE as GOOGLE_SERVICE
from ch05_protocols.google_speech import GoogleSpeech, add_google_speech
from ch05_protocols.google_stream import GoogleLimits
from ch05_protocols.grpc_server import GrpcSpeechServer, Mounted
from ch05_protocols.interceptors import ApiKeyInterceptor
from ch05_protocols.recognition_call import CallLimits
from ch05_protocols.settings import GrpcSettings
from ch05_protocols.speech_service import (
    SERVICE_NAME,
    ServiceLimits,
    SpeechService,
    add_speech_service,
)
from ch05_protocols.stream_gate import StreamGate

log = logging.getLogger("ch05_protocols")


@dataclass(frozen=True)
class BuiltGrpc:
    server: GrpcSpeechServer
    recognizer: Recognizer
    dev_key: str | None  # set when SPEECH_API_KEYS was empty


def recognition_services(speech: SpeechService, keys: KeyCheck
                         ) -> list[Mounted]:
    """Every recognition service on the server, on one session core:
    ours, and Google's `google.cloud.speech.v1.Speech` beside it, built
    from the same engine, scheduler, stream defaults, hooks and gate,
    and behind the same key check."""
    limits = speech.limits
    google = GoogleSpeech(
        deadline_sessions(speech.scheduler, limits.connection,
                          speech.cadence),
        speech.gate, keys, speech.hooks,
        GoogleLimits(max_audio_bytes=limits.call.max_audio_bytes,
                     max_stream_s=limits.max_stream_s,
                     audio_timeout_s=limits.audio_timeout_s,
                     send_queue=limits.call.send_queue),
        speech.defaults)
    return [Mounted(SERVICE_NAME, partial(add_speech_service, speech)),
            Mounted(GOOGLE_SERVICE, partial(add_google_speech,
                                            speech=google))]


def service_limits(settings: GrpcSettings) -> ServiceLimits:
    engine = settings.speech
    return ServiceLimits(
        max_streams=settings.max_streams,
        max_stream_s=settings.max_stream_s,
        audio_timeout_s=settings.audio_timeout_s,
        call=CallLimits(max_audio_bytes=settings.max_audio_bytes,
                        send_queue=engine.send_queue),
        connection=ConnectionLimits(
            send_queue=engine.send_queue,
            max_pending_audio_s=engine.max_pending_audio_s,
            max_session_s=settings.max_stream_s))


def stream_defaults(settings: GrpcSettings) -> StreamDefaults:
    engine = settings.speech
    return StreamDefaults(
        vad=VadConfig(
            aggressiveness=engine.vad_aggressiveness,
            pre_roll_ms=engine.pre_roll_ms,
            endpointing_ms=engine.endpointing_ms,
            max_utterance_ms=engine.max_utterance_ms),
        idle_timeout_s=settings.audio_timeout_s)


def build_grpc_server(
    settings: GrpcSettings, keys: KeyCheck | None = None,
    hooks: StreamHooks | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    recognizer: Recognizer | None = None,
    scheduler: DecodeScheduler | None = None,
    cadence: InterimCadence | None = None,
) -> BuiltGrpc:
    """The chapter 5 gRPC server. Later chapters pass `hooks` to follow
    every stream, `interceptors` that run after the key check, the
    `recognizer` they already serve with, so one model serves both,
    and may pass their own `scheduler` (a cross-stream batcher) and
    `cadence` of interims (chapter 6), and their own key check
    (chapter 9's key store)."""
    dev_key = None
    if keys is None:
        keys, dev_key = load_api_keys(settings.env)
    if recognizer is None:
        recognizer = build_recognizer(settings.speech,
                                      build_device(settings.speech))
    gate = StreamGate(recognizer, settings.max_streams)
    speech = SpeechService(gate,
                           scheduler or DirectScheduler(recognizer),
                           stream_defaults(settings),
                           service_limits(settings), hooks or NoHooks(),
                           cadence or EveryChunk())
    server = grpc.aio.server(
        interceptors=[ApiKeyInterceptor(keys), *interceptors],
        # A message far over the audio limit is refused by gRPC itself
        # (RESOURCE_EXHAUSTED) before it is buffered whole.
        options=[("grpc.max_receive_message_length",
                  4 * settings.max_audio_bytes)])
    grpc_server = GrpcSpeechServer(speech,
                                   recognition_services(speech, keys),
                                   server, settings.shutdown_grace_s)
    return BuiltGrpc(grpc_server, recognizer, dev_key)


async def serve(settings: GrpcSettings) -> int:
    """`python -m ch05_protocols grpc`: listen, serve until signalled."""
    built = build_grpc_server(settings)
    server = built.server
    await server.start(settings.host, settings.port)
    if built.dev_key:
        print(f"SPEECH_API_KEYS is not set; development key:"
              f" {built.dev_key}", flush=True)
    print(f"listening on grpc://{settings.host}:{server.port}"
          f" ({SERVICE_NAME}, health, reflection)", flush=True)
    await run_until_signalled(built.recognizer, server.shutdown)
    log.info("event=stopped")
    return 0


async def run_until_signalled(recognizer: Recognizer,
                              drain: Callable[[], Awaitable[None]]) -> None:
    """Warm the model up and serve until SIGTERM or Ctrl-C; then drain."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    gc.freeze()  # start-up objects live for the run: out of GC's sight
    warmup = asyncio.create_task(recognizer.start())
    await stop.wait()
    log.info("event=draining")
    warmup.cancel()
    await drain()
    await recognizer.stop()
