"""The API service's settings: flags, `CH07_<NAME>` variables, defaults.

Chapter 7. The upload and audio limits, the admission bounds, the
inference deadline, the SSE keep-alive, the pacing of long-running
work and where operations are stored each have a flag and a variable;
the engine and the batching are chapter 4's and chapter 6's settings
(`CH04_`, `CH06_` variables), so one engine setting means the same in
every chapter's service.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ch04_streaming.settings import add_flags, option
from ch06_pipeline.settings import PipelineSettings, parse_pipeline_settings

MIB = 1024 * 1024


@dataclass(frozen=True)
class ApiSettings:
    host: str = option("127.0.0.1", "address to listen on")
    port: int = option(8007, "HTTP port")
    max_upload_mb: float = option(
        25.0, "largest upload, in MiB (OpenAI's limit is 25)")
    max_audio_s: float = option(
        4 * 3600.0, "longest audio one request may hold")
    max_active: int = option(
        64, "requests transcribing at once")
    max_waiting: int = option(
        256, "requests waiting for a transcription slot before 429")
    max_wait_s: float = option(
        5.0, "longest a request waits for a slot before 429")
    max_operations: int = option(
        4, "long-running operations transcribing at once")
    max_pending_operations: int = option(
        64, "long-running operations waiting or running before 429")
    timeout_s: float = option(
        30.0, "inference deadline of a request, plus --timeout-per-audio-s"
        " per second of its audio")
    timeout_per_audio_s: float = option(
        0.5, "inference deadline added per second of audio")
    keepalive_s: float = option(
        15.0, "an SSE comment after this long without an event")
    lro_speed: float = option(
        20.0, "long-running work is fed at this multiple of real time,"
        " so batch work leaves the accelerator to live traffic (0: as"
        " fast as it decodes)")
    database_url: str = option(
        "sqlite:///build/ch07_api.sqlite3",
        "where operations and transcripts are kept (SQLite or"
        " postgresql+psycopg://...)")
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MIB)

    def timeout_for(self, audio_s: float) -> float:
        return self.timeout_s + self.timeout_per_audio_s * audio_s


def parse_api_settings(argv: Sequence[str] | None = None,
                       env: Mapping[str, str] | None = None
                       ) -> ApiSettings:
    env = dict(os.environ if env is None else env)
    parser = argparse.ArgumentParser(
        prog="python -m ch07_api",
        description="An ML-facing HTTP API: OpenAI-compatible"
        " transcription (sync and SSE) and AIP-styled transcripts with"
        " long-running operations, on chapter 6's pipeline.")
    add_flags(parser, ApiSettings, "CH07", env)
    args = parser.parse_args(argv)
    positive = ("max_upload_mb", "max_audio_s", "max_active",
                "max_operations", "max_pending_operations",
                "keepalive_s", "timeout_s")
    for name in positive:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be above 0")
    for name in ("max_waiting", "max_wait_s", "lro_speed",
                 "timeout_per_audio_s"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more")
    pipeline = parse_pipeline_settings([], env)
    return ApiSettings(**vars(args), pipeline=pipeline, env=env)
