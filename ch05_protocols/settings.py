"""The gRPC service's settings, from flags and environment variables.

Chapter 5, "gRPC bidirectional streaming". The limits a gRPC speech
API documents (25 KB of audio per message, a stream of at most five
minutes, audio that must keep arriving) and the service's own (streams
at once, the shutdown grace) each have a flag, a `CH05_<NAME>`
variable and a default. The engine and the VAD are chapter 4's, set by
its `CH04_<NAME>` variables.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from ch04_streaming.settings import Settings, option, parse_settings
from ch04_streaming.settings import add_flags as add_setting_flags


@dataclass(frozen=True)
class GrpcSettings:
    host: str = option("127.0.0.1", "address to listen on")
    port: int = option(50005, "port to listen on")
    max_streams: int = option(
        100, "concurrent streams before RESOURCE_EXHAUSTED")
    max_audio_bytes: int = option(
        25 * 1024, "largest audio_content of one request")
    max_stream_s: float = option(
        300.0, "longest a stream may last before OUT_OF_RANGE")
    audio_timeout_s: float = option(
        10.0, "seconds without a request before OUT_OF_RANGE")
    shutdown_grace_s: float = option(
        10.0, "seconds to finish streams on SIGTERM")
    speech: Settings = field(default_factory=Settings)  # chapter 4's
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


def add_flags(parser: argparse.ArgumentParser,
              env: Mapping[str, str]) -> None:
    """One flag per setting; `CH05_<NAME>` variables set the defaults."""
    add_setting_flags(parser, GrpcSettings, "CH05", env)


def from_args(args: argparse.Namespace,
              env: Mapping[str, str]) -> GrpcSettings:
    flags = {f.name: getattr(args, f.name) for f in fields(GrpcSettings)
             if "help" in f.metadata}
    return GrpcSettings(**flags, speech=parse_settings([], env), env=env)
