"""The composition root: the one place that picks concrete parts.

Chapter 4. `build_server` wires the mock engine on its simulated
accelerator, the decode scheduler, the two dialects, the API keys and
the limits into a `SpeechServer`, and hands the server a factory that
builds each stream's pipeline (decoder, VAD gate, pending-audio cap,
session). Later chapters compose chapter 4 here: they pass hooks
(metering, quotas) or their own scheduler, and run the result with
`run_until_signalled`. Tests call `build_server` with their own
settings, or build a `SpeechServer` with fakes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ch03_gpu.dcgm import DcgmMetrics
from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILE
from ch04_streaming.audio import AudioDecoder
from ch04_streaming.auth import ApiKeys, load_api_keys
from ch04_streaming.backpressure import PendingAudioCap
from ch04_streaming.dialects.assemblyai import AssemblyAI
from ch04_streaming.dialects.deepgram import Deepgram
from ch04_streaming.dialects.dialect import (
    Dialect,
    StreamDefaults,
    StreamRequest,
)
from ch04_streaming.engine import (
    LocalMatching,
    Matching,
    MockRecognizer,
    NullRecognizer,
    Recognizer,
    load_lexicon,
)
from ch04_streaming.matcher_process import MatcherProcess
from ch04_streaming.scheduler import DecodeScheduler, DirectScheduler
from ch04_streaming.server import ServerLimits, SpeechServer
from ch04_streaming.session import Emit, StreamSession
from ch04_streaming.settings import Settings
from ch04_streaming.stream_handler import ConnectionLimits, SessionFactory
from ch04_streaming.stream_hooks import NoHooks, StreamHooks
from ch04_streaming.vad import VadConfig, build_vad_gate
from ch04_streaming.word_errors import WordErrorInjector

log = logging.getLogger("ch04_streaming")


@dataclass(frozen=True)
class Built:
    server: SpeechServer
    recognizer: Recognizer
    dev_key: str | None  # set when SPEECH_API_KEYS was empty


def dialects(settings: Settings | None = None) -> dict[str, Dialect]:
    """Both dialects, with AssemblyAI's pacing limits from `settings`."""
    assemblyai = AssemblyAI()
    if settings is not None:
        assemblyai = AssemblyAI(
            max_ahead_s=settings.assemblyai_max_ahead_s,
            chunk_ms=(settings.assemblyai_min_chunk_ms,
                      settings.assemblyai_max_chunk_ms))
    both: tuple[Dialect, ...] = (Deepgram(), assemblyai)
    return {d.path: d for d in both}


# --8<-- [start:session_factory]
def session_factory(scheduler: DecodeScheduler,
                    limits: ConnectionLimits) -> SessionFactory:
    """Each stream gets its own decoder, VAD gate and cap; the
    scheduler, and the engine behind it, are shared."""

    def new_session(request: StreamRequest, emit: Emit) -> StreamSession:
        return StreamSession(
            options=request.options,
            scheduler=scheduler,
            audio=AudioDecoder(request.encoding, request.sample_rate),
            vad=build_vad_gate(request.vad),
            emit=emit,
            cap=PendingAudioCap(limits.max_pending_audio_s),
        )

    return new_session
# --8<-- [end:session_factory]


def build_device(settings: Settings) -> Accelerator:
    """The simulated accelerator: chapter 3's device model, with the
    measured profile's costs and memory, in the chosen number format."""
    return PROFILE.accelerator(settings.profile, settings.precision,
                               load_s=settings.load_s,
                               warmup_s=settings.warmup_s)


def build_recognizer(settings: Settings, device: Accelerator
                     ) -> Recognizer:
    if settings.recognizer == "null":
        return NullRecognizer(device)
    matching: Matching = MatcherProcess(settings.manifest)
    if settings.matcher_runs_on == "loop":
        matching = LocalMatching(load_lexicon(settings.manifest))
    return MockRecognizer(
        matching=matching,
        device=device,
        errors=WordErrorInjector(
            seed=settings.error_seed,
            substitution=settings.substitution_rate,
            deletion=settings.deletion_rate,
            insertion=settings.insertion_rate,
        ),
    )


def build_server(settings: Settings, keys: ApiKeys | None = None,
                 hooks: StreamHooks | None = None,
                 scheduler: DecodeScheduler | None = None) -> Built:
    """The chapter 4 server. Later chapters pass `hooks` to follow
    every stream (metering, quotas) and may pass their own `scheduler`
    (a cross-stream batcher) without this chapter knowing them.
    """
    dev_key = None
    if keys is None:
        keys, dev_key = load_api_keys(settings.env)
    device = build_device(settings)
    recognizer = build_recognizer(settings, device)
    defaults = StreamDefaults(
        vad=VadConfig(
            aggressiveness=settings.vad_aggressiveness,
            pre_roll_ms=settings.pre_roll_ms,
            endpointing_ms=settings.endpointing_ms,
            max_utterance_ms=settings.max_utterance_ms,
        ),
        idle_timeout_s=settings.idle_timeout_s,
    )
    connection = ConnectionLimits(
        send_queue=settings.send_queue,
        max_pending_audio_s=settings.max_pending_audio_s,
        max_session_s=settings.max_session_s)
    limits = ServerLimits(
        max_streams=settings.max_streams,
        max_streams_per_key=settings.max_streams_per_key,
        max_message_bytes=settings.max_message_bytes,
        connection=connection,
        shutdown_grace_s=settings.shutdown_grace_s,
    )
    new_session = session_factory(
        scheduler or DirectScheduler(recognizer), connection)
    server = SpeechServer(dialects(settings), recognizer, new_session, keys,
                          defaults, limits, hooks or NoHooks())
    server.metrics.registry.register(DcgmMetrics(device))
    return Built(server, recognizer, dev_key)


async def run_until_signalled(recognizer: Recognizer, server: SpeechServer,
                              drain: Callable[[], Awaitable[None]]) -> None:
    """Warm the model up and serve until SIGTERM or Ctrl-C; then drain."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Start-up objects (the lexicon, modules) live for the whole run:
    # move them out of the garbage collector's sight, so its full passes
    # stay short and do not stall every stream at once.
    gc.freeze()
    warmup = asyncio.create_task(recognizer.start())
    await stop.wait()
    log.info("event=draining streams=%d", len(server.handlers))
    warmup.cancel()
    await drain()
    await recognizer.stop()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS): a faster event loop
    for the same asyncio code; the standard loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
