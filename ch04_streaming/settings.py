"""One typed settings object, from flags and environment variables.

Chapter 4. Every knob the chapter discusses (VAD aggressiveness,
endpointing, pre-roll, caps, timeouts, the engine's cost profile and cold
start) has a flag, an environment variable and a default that needs
nothing else installed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib.resources import files
from pathlib import Path, PurePosixPath
from typing import Any

from ch03_gpu.profiles import PROFILE, PROFILES

# The sample audio is package data of `examples`, found where that
# package is: in a checkout or in site-packages. A data lookup, not an
# import of the examples' code, which builds on this chapter.
DEFAULT_MANIFEST = Path(str(files("examples") / "audio" / "manifest.json"))


def fixture_file(manifest: Path, listed: str) -> Path:
    """A fixture's file, from its path as the manifest lists it.

    The manifest lists paths from the repository root; the files sit
    beside the manifest, which holds wherever the audio is installed.
    """
    return manifest.parent / PurePosixPath(listed).name


def option(default: object, help_text: str) -> Any:
    """A setting: its default, and the help its flag shows."""
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class Settings:
    host: str = option("127.0.0.1", "address to listen on")
    port: int = option(8004, "port to listen on")
    max_streams: int = option(200, "concurrent streams before 503")
    max_streams_per_key: int = option(
        50, "concurrent streams one API key may hold before 429")
    max_streams_per_ip: int = option(
        0, "concurrent streams one client address may hold before 429"
        " (0: no cap)")
    max_handshakes_per_ip: int = option(
        0, "connections from one client address whose request is not"
        " answered yet, before 429 (0: no cap)")
    open_timeout_s: float = option(
        10.0, "seconds a client has to send its whole upgrade request")
    max_session_s: float = option(
        3 * 3600.0, "longest a stream may stay open")
    max_message_bytes: int = option(256 * 1024,
                                    "largest WebSocket frame accepted")
    send_queue: int = option(64, "unsent messages before a client is cut")
    max_pending_audio_s: float = option(
        10.0, "undecoded audio a stream may hold before its reader waits")
    idle_timeout_s: float = option(
        10.0, "seconds without a frame before closing")
    shutdown_grace_s: float = option(
        10.0, "seconds to finish streams on SIGTERM")
    vad_aggressiveness: int = option(2, "webrtcvad mode, 0 to 3")
    endpointing_ms: int = option(
        300, "trailing silence that ends an utterance")
    pre_roll_ms: int = option(300, "audio replayed when speech starts")
    max_utterance_ms: int = option(
        15_000, "longest utterance before a forced final")
    recognizer: str = option(
        "mock", "mock (hears the fixtures) or null (no model)")
    matcher_runs_on: str = option(
        "process", "where the mock's matcher runs: process (a worker"
        " process), or loop (the event loop, to measure its stall)")
    assemblyai_max_ahead_s: float = option(
        300.0, "AssemblyAI dialect: audio a client may send ahead of"
        " real time before 3007")
    assemblyai_min_chunk_ms: float = option(
        50.0, "AssemblyAI dialect: shortest audio frame before 3007")
    assemblyai_max_chunk_ms: float = option(
        1000.0, "AssemblyAI dialect: longest audio frame before 3007")
    profile: str = option(
        "tuned", f"engine cost model: {', '.join(PROFILES)}")
    precision: str = option(
        "bf16", f"number format: {', '.join(PROFILE.precisions)}")
    load_s: float = option(1.0, "simulated model load time")
    warmup_s: float = option(0.5, "simulated warm-up time")
    warmup_decodes: int = option(
        1, "decodes of sample sound run before /readyz says ready (0:"
        " ready before any)")
    lexicon_cache: str = option(
        "build/cache", "directory where the mock's templates are kept"
        " once computed, and memory-mapped at start (empty: computed at"
        " every start)")
    warm_pool: int = option(
        0, "chapter 3's warm pool: prepare once, keep this many forked"
        " workers warm beside the serving one (0: one process, no pool)")
    error_seed: int = option(0, "seed of injected word errors")
    substitution_rate: float = option(
        0.0, "injected substitutions, 0 to 1")
    deletion_rate: float = option(0.0, "injected deletions, 0 to 1")
    insertion_rate: float = option(0.0, "injected insertions, 0 to 1")
    manifest: Path = field(default=DEFAULT_MANIFEST, metadata={
        "help": "sample-audio manifest the mock engine knows"})
    fixtures_dir: str = option(
        "", "directory whose manifest.json lists the recordings the"
        " browser page may play (empty: the directory of --manifest,"
        " the recordings the mock engine knows)")
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


def add_flags(parser: argparse.ArgumentParser, settings_type: type,
              prefix: str, env: Mapping[str, str]) -> None:
    """One flag per setting that has help; `<PREFIX>_<NAME>` variables
    set the defaults. Later chapters' settings use it too."""
    defaults = settings_type()
    for setting in fields(settings_type):
        if "help" not in setting.metadata:
            continue  # not a flag
        name = setting.name
        kind: Any = type(getattr(defaults, name))
        variable = f"{prefix}_{name.upper()}"
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=kind,
            default=kind(env.get(variable, getattr(defaults, name))),
            help=f"{setting.metadata['help']} (env {variable};"
                 " default %(default)s)")


def parse_settings(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Flags win over `CH04_<NAME>` variables, which win over defaults."""
    env = dict(os.environ if env is None else env)
    parser = argparse.ArgumentParser(
        prog="python -m ch04_streaming",
        description="Streaming speech recognition over WebSocket.",
    )
    add_flags(parser, Settings, "CH04", env)
    args = parser.parse_args(argv)
    if args.profile not in PROFILES:
        parser.error(f"--profile must be one of {', '.join(PROFILES)}")
    if args.precision not in PROFILE.precisions:
        parser.error("--precision must be one of"
                     f" {', '.join(PROFILE.precisions)}")
    if args.recognizer not in ("mock", "null"):
        parser.error("--recognizer must be mock or null")
    if args.matcher_runs_on not in ("process", "loop"):
        parser.error("--matcher-runs-on must be process or loop")
    if args.warmup_decodes < 0 or args.warm_pool < 0:
        parser.error("--warmup-decodes and --warm-pool must be 0 or more")
    return Settings(**vars(args), env=env)
