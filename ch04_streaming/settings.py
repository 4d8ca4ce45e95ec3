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
from dataclasses import dataclass, field
from pathlib import Path

from ch04_streaming.accelerator import PROFILES

DEFAULT_MANIFEST = (
    Path(__file__).resolve().parent.parent
    / "examples" / "audio" / "manifest.json"
)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8004
    max_streams: int = 200
    max_message_bytes: int = 256 * 1024
    send_queue: int = 64
    idle_timeout_s: float = 10.0
    shutdown_grace_s: float = 10.0
    vad_aggressiveness: int = 2
    endpointing_ms: int = 300
    pre_roll_ms: int = 300
    max_utterance_ms: int = 15_000
    recognizer: str = "mock"
    profile: str = "tuned"
    load_s: float = 1.0
    warmup_s: float = 0.5
    error_seed: int = 0
    substitution_rate: float = 0.0
    deletion_rate: float = 0.0
    insertion_rate: float = 0.0
    manifest: Path = DEFAULT_MANIFEST
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("host", str, "address to listen on"),
    ("port", int, "port to listen on"),
    ("max_streams", int, "concurrent streams before 503"),
    ("max_message_bytes", int, "largest WebSocket frame accepted"),
    ("send_queue", int, "unsent messages before a client is cut"),
    ("idle_timeout_s", float, "seconds without a frame before closing"),
    ("shutdown_grace_s", float, "seconds to finish streams on SIGTERM"),
    ("vad_aggressiveness", int, "webrtcvad mode, 0 to 3"),
    ("endpointing_ms", int, "trailing silence that ends an utterance"),
    ("pre_roll_ms", int, "audio replayed when speech starts"),
    ("max_utterance_ms", int, "longest utterance before a forced final"),
    ("recognizer", str, "mock (hears the fixtures) or null (no model)"),
    ("profile", str, f"engine cost model: {', '.join(PROFILES)}"),
    ("load_s", float, "simulated model load time"),
    ("warmup_s", float, "simulated warm-up time"),
    ("error_seed", int, "seed of injected word errors"),
    ("substitution_rate", float, "injected substitutions, 0 to 1"),
    ("deletion_rate", float, "injected deletions, 0 to 1"),
    ("insertion_rate", float, "injected insertions, 0 to 1"),
    ("manifest", Path, "sample-audio manifest the mock engine knows"),
)


def parse_settings(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Flags win over `CH04_<NAME>` variables, which win over defaults."""
    env = dict(os.environ if env is None else env)
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m ch04_streaming",
        description="Streaming speech recognition over WebSocket.",
    )
    for name, kind, help_text in OPTIONS:
        variable = f"CH04_{name.upper()}"
        default = kind(env.get(variable, getattr(defaults, name)))
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=default,
            help=f"{help_text} (env {variable}; default %(default)s)",
        )
    args = parser.parse_args(argv)
    if args.profile not in PROFILES:
        parser.error(f"--profile must be one of {', '.join(PROFILES)}")
    if args.recognizer not in ("mock", "null"):
        parser.error("--recognizer must be mock or null")
    return Settings(**vars(args), env=env)
