"""The composition root: the one place that picks concrete parts.

Chapter 4. `build_server` wires the mock engine on its simulated
accelerator, the two dialects, the API keys and the limits into a
`SpeechServer`. Tests call it with their own settings, or build a
`SpeechServer` directly with fakes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ch04_streaming.accelerator import PROFILES, Accelerator
from ch04_streaming.auth import ApiKeys, load_api_keys
from ch04_streaming.dialects.assemblyai import AssemblyAI
from ch04_streaming.dialects.deepgram import Deepgram
from ch04_streaming.dialects.dialect import Dialect, StreamDefaults
from ch04_streaming.engine import (
    MockRecognizer,
    NullRecognizer,
    Recognizer,
    load_lexicon,
)
from ch04_streaming.server import ServerLimits, SpeechServer
from ch04_streaming.settings import Settings
from ch04_streaming.stream_handler import ConnectionLimits
from ch04_streaming.stream_hooks import NoHooks, StreamHooks
from ch04_streaming.vad import VadConfig
from ch04_streaming.word_errors import WordErrorInjector


@dataclass(frozen=True)
class Built:
    server: SpeechServer
    recognizer: Recognizer
    dev_key: str | None  # set when SPEECH_API_KEYS was empty


def dialects() -> dict[str, Dialect]:
    return {d.path: d for d in (Deepgram(), AssemblyAI())}


def build_server(settings: Settings, keys: ApiKeys | None = None,
                 hooks: StreamHooks | None = None) -> Built:
    """The chapter 4 server; later chapters pass `hooks` to follow
    every stream (metering, quotas) without this chapter knowing them.
    """
    dev_key = None
    if keys is None:
        keys, dev_key = load_api_keys(settings.env)
    device = Accelerator(PROFILES[settings.profile], load_s=settings.load_s,
                         warmup_s=settings.warmup_s)
    recognizer: Recognizer = NullRecognizer(device)
    if settings.recognizer == "mock":
        recognizer = MockRecognizer(
            lexicon=load_lexicon(settings.manifest),
            device=device,
            errors=WordErrorInjector(
                seed=settings.error_seed,
                substitution=settings.substitution_rate,
                deletion=settings.deletion_rate,
                insertion=settings.insertion_rate,
            ),
        )
    defaults = StreamDefaults(
        vad=VadConfig(
            aggressiveness=settings.vad_aggressiveness,
            pre_roll_ms=settings.pre_roll_ms,
            endpointing_ms=settings.endpointing_ms,
            max_utterance_ms=settings.max_utterance_ms,
        ),
        idle_timeout_s=settings.idle_timeout_s,
    )
    limits = ServerLimits(
        max_streams=settings.max_streams,
        max_message_bytes=settings.max_message_bytes,
        connection=ConnectionLimits(send_queue=settings.send_queue),
        shutdown_grace_s=settings.shutdown_grace_s,
    )
    server = SpeechServer(dialects(), recognizer, keys, defaults, limits,
                          hooks or NoHooks())
    return Built(server, recognizer, dev_key)
