"""The composition root: the one place that picks concrete parts.

Chapter 4. `build_server` wires the mock engine on its simulated
accelerator, the decode scheduler, the three dialects, the API keys,
the limits and the browser page's sample recordings into a
`SpeechServer`, and hands the server a factory that builds each
stream's pipeline (decoder, VAD gate, pending-audio cap, session; a
session per channel when its channels are transcribed one by one).
Later chapters compose chapter 4 here: they pass hooks (metering,
quotas) or their own scheduler, and run the result with
`run_until_signalled`. Tests call `build_server` with their own
settings, or build a `SpeechServer` with fakes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from ch03_gpu.dcgm import DcgmMetrics
from ch03_gpu.device import Accelerator
from ch03_gpu.phases import mark
from ch03_gpu.profiles import PROFILE
from ch03_gpu.warm_pool import Handoff, WarmPool
from ch04_streaming.audio import AudioDecoder, InterleavedFormat
from ch04_streaming.auth import ApiKeys, KeyCheck, load_api_keys
from ch04_streaming.backpressure import PendingAudioCap, pending_audio_cap
from ch04_streaming.channels import ChannelSessions
from ch04_streaming.dialects.assemblyai import AssemblyAI
from ch04_streaming.dialects.deepgram import Deepgram
from ch04_streaming.dialects.dialect import (
    Dialect,
    StreamDefaults,
    StreamRequest,
)
from ch04_streaming.dialects.openai_realtime import OpenAIRealtime
from ch04_streaming.engine import (
    LocalMatching,
    Matching,
    MockRecognizer,
    NullRecognizer,
    Recognizer,
    load_lexicon,
)
from ch04_streaming.matcher_process import MatcherProcess
from ch04_streaming.page_api import FixtureLibrary
from ch04_streaming.scheduler import DecodeScheduler, DirectScheduler
from ch04_streaming.server import HttpRoute, ServerLimits, SpeechServer
from ch04_streaming.session import (
    Emit,
    EveryChunk,
    InterimCadence,
    Session,
    StreamSession,
)
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
    """The three dialects, with AssemblyAI's pacing limits from
    `settings`."""
    assemblyai = AssemblyAI()
    if settings is not None:
        assemblyai = AssemblyAI(
            max_ahead_s=settings.assemblyai_max_ahead_s,
            chunk_ms=(settings.assemblyai_min_chunk_ms,
                      settings.assemblyai_max_chunk_ms))
    served: tuple[Dialect, ...] = (Deepgram(), assemblyai, OpenAIRealtime())
    return {d.path: d for d in served}


# --8<-- [start:session_factory]
def session_factory(scheduler: DecodeScheduler, limits: ConnectionLimits,
                    cadence: InterimCadence | None = None
                    ) -> SessionFactory:
    """Each stream gets its own decoder, VAD gate and cap (with the
    policy it asked for), a decoder and gate per channel if its channels
    are transcribed one by one; the scheduler, and the engine behind
    it, are shared, as is the cadence of interims (chapter 6 lowers it).
    """
    cadence = cadence or EveryChunk()

    def session(request: StreamRequest, emit: Emit, cap: PendingAudioCap,
                channels: int) -> StreamSession:
        return StreamSession(
            options=request.options, scheduler=scheduler,
            audio=AudioDecoder(request.encoding, request.sample_rate,
                               channels),  # more than 1: mixed down
            vad=build_vad_gate(request.vad), emit=emit, cap=cap,
            cadence=cadence)

    def new_session(request: StreamRequest, emit: Emit) -> Session:
        cap = pending_audio_cap(request.backpressure,
                                limits.max_pending_audio_s)
        if request.transcribed_channels == 1:
            return session(request, emit, cap, request.channels)
        frames = InterleavedFormat(request.encoding, request.sample_rate,
                                   request.channels)
        return ChannelSessions(frames, emit, cap,
                               partial(session, request, channels=1))

    return new_session
# --8<-- [end:session_factory]


def vad_config(settings: Settings) -> VadConfig:
    """The VAD and endpointing every stream starts with."""
    return VadConfig(aggressiveness=settings.vad_aggressiveness,
                     pre_roll_ms=settings.pre_roll_ms,
                     endpointing_ms=settings.endpointing_ms,
                     max_utterance_ms=settings.max_utterance_ms)


def build_device(settings: Settings) -> Accelerator:
    """The simulated accelerator: chapter 3's device model, with the
    measured profile's costs and memory, in the chosen number format."""
    return PROFILE.accelerator(settings.profile, settings.precision,
                               load_s=settings.load_s,
                               warmup_s=settings.warmup_s)


def lexicon_cache(settings: Settings) -> Path | None:
    return Path(settings.lexicon_cache) if settings.lexicon_cache else None


def fixtures_dir(settings: Settings) -> Path:
    """Where the browser page's sample recordings are: by default, the
    sample audio's own directory (`examples/audio/` in a checkout),
    the recordings the mock engine knows."""
    if settings.fixtures_dir:
        return Path(settings.fixtures_dir)
    return settings.manifest.parent


def build_recognizer(settings: Settings, device: Accelerator
                     ) -> Recognizer:
    if settings.recognizer == "null":
        return NullRecognizer(device)
    cache = lexicon_cache(settings)
    matching: Matching = MatcherProcess(settings.manifest, cache_dir=cache)
    if settings.matcher_runs_on == "loop":
        matching = LocalMatching(load_lexicon(settings.manifest, cache))
    return MockRecognizer(
        matching=matching,
        device=device,
        errors=WordErrorInjector(
            seed=settings.error_seed,
            substitution=settings.substitution_rate,
            deletion=settings.deletion_rate,
            insertion=settings.insertion_rate,
        ),
        warmup_decodes=settings.warmup_decodes,
    )


def build_server(settings: Settings, keys: KeyCheck | None = None,
                 hooks: StreamHooks | None = None,
                 scheduler: DecodeScheduler | None = None,
                 device: Accelerator | None = None,
                 more_dialects: Mapping[str, Dialect] | None = None,
                 recognizer: Recognizer | None = None,
                 cadence: InterimCadence | None = None,
                 routes: Mapping[str, HttpRoute] | None = None,
                 ) -> Built:
    """The chapter 4 server. Later chapters pass `hooks` to follow
    every stream (metering, quotas) and may pass their own `scheduler`
    (a cross-stream batcher) without this chapter knowing them; chapter
    3's warm pool passes a `device` its parent has loaded; chapter 5
    serves its own dialects beside these (`more_dialects`, by path);
    chapter 6 passes the `recognizer` its scheduler batches for, and
    the `cadence` of interims its degradation policy sets; chapter 9
    serves its token endpoints as GET `routes` beside the streams.
    """
    dev_key = None
    if keys is None:
        keys, dev_key = load_api_keys(settings.env)
    device = device or build_device(settings)
    recognizer = recognizer or build_recognizer(settings, device)
    defaults = StreamDefaults(vad=vad_config(settings),
                              idle_timeout_s=settings.idle_timeout_s)
    connection = ConnectionLimits(
        send_queue=settings.send_queue,
        max_pending_audio_s=settings.max_pending_audio_s,
        max_session_s=settings.max_session_s)
    limits = ServerLimits(
        max_streams=settings.max_streams,
        max_streams_per_key=settings.max_streams_per_key,
        max_streams_per_ip=settings.max_streams_per_ip or None,
        max_handshakes_per_ip=settings.max_handshakes_per_ip or None,
        open_timeout_s=settings.open_timeout_s,
        max_message_bytes=settings.max_message_bytes,
        connection=connection,
        shutdown_grace_s=settings.shutdown_grace_s,
    )
    new_session = session_factory(
        scheduler or DirectScheduler(recognizer), connection, cadence)
    by_path = {**dialects(settings), **(more_dialects or {})}
    server = SpeechServer(by_path, recognizer, new_session, keys,
                          defaults, limits, hooks or NoHooks(),
                          routes or {},
                          FixtureLibrary.load(fixtures_dir(settings)))
    server.metrics.registry.register(DcgmMetrics(device))
    mark("built")
    return Built(server, recognizer, dev_key)


async def serve(settings: Settings, built: Built | None = None,
                listener: socket.socket | None = None) -> int:
    """Listen (on `listener` if given), print where, serve until
    signalled: `python -m ch04_streaming`, and each warm-pool worker."""
    built = built or build_server(settings)
    server = built.server
    await server.start(settings.host, settings.port, sock=listener)
    mark("listening")
    url = f"http://{settings.host}:{server.port}"
    log.info("event=listening url=%s profile=%s", url, settings.profile)
    if built.dev_key:
        print(f"SPEECH_API_KEYS is not set; development key: "
              f"{built.dev_key} (browser: {url}/?key={built.dev_key})",
              flush=True)
    print(f"listening on {url} (Deepgram /v1/listen, AssemblyAI /v3/ws,"
          f" browser client /)", flush=True)
    await run_until_signalled(built.recognizer, server, server.shutdown)
    log.info("event=stopped")
    return 0


@dataclass(frozen=True)
class Prepared:
    """What a warm pool's parent prepares once for all its workers."""

    device: Accelerator
    keys: ApiKeys
    dev_key: str | None


def prepare_workers(settings: Settings) -> Prepared:
    """The slow part of a start, done before any fork: the modules are
    imported already; the device loads its weights, and the lexicon's
    cache entry is written once for every worker's matcher to map."""
    cache = lexicon_cache(settings)
    if settings.recognizer == "mock" and cache is not None:
        load_lexicon(settings.manifest, cache)
    keys, dev_key = load_api_keys(settings.env)  # one key for all
    device = build_device(settings)
    asyncio.run(device.start())  # the loop is closed before any fork
    return Prepared(device, keys, dev_key)


def run_worker(settings: Settings, prepared: Prepared,
               handoff: Handoff) -> int:
    """A forked worker: its own event loop (one cannot cross a fork),
    its own matcher process, warm before it parks."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(serve_when_handed_over(settings, prepared,
                                                 handoff))


async def serve_when_handed_over(settings: Settings, prepared: Prepared,
                                 handoff: Handoff) -> int:
    built = build_server(settings, keys=prepared.keys,
                         device=prepared.device)
    await built.recognizer.start()  # the matcher, then a warm-up decode
    if not await handoff.park():
        await built.recognizer.stop()
        return 0
    return await serve(settings, replace(built, dev_key=prepared.dev_key),
                       listener=handoff.listener)


def serve_warm_pool(settings: Settings) -> int:
    """`python -m ch04_streaming --warm-pool N`: one serving worker and
    N warm spares, forked from one prepared parent (chapter 3)."""
    pool = WarmPool(
        prepare=partial(prepare_workers, settings),
        work=partial(run_worker, settings),
        spares=settings.warm_pool, host=settings.host, port=settings.port,
        stop_timeout_s=settings.shutdown_grace_s + 5.0)
    return pool.run()


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
