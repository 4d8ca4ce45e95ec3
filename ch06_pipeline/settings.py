"""The pipeline's settings: flags, `CH06_<NAME>` variables, defaults.

Chapter 6. The batching knobs (largest batch, longest wait, queue
bound), the stream caps, the cheaper model's cost and error rate, and
the degradation thresholds each have a flag and a variable. The engine
and the stream defaults are chapter 4's (`CH04_<NAME>` variables), so
one engine setting means the same thing in every chapter's service.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from ch03_gpu.profiles import PROFILES
from ch04_streaming.settings import (
    Settings,
    add_flags,
    option,
    parse_settings,
)
from ch06_pipeline.degradation import Thresholds
from ch06_pipeline.pipeline_scheduler import BatchingConfig


@dataclass(frozen=True)
class PipelineSettings:
    host: str = option("127.0.0.1", "address to listen on")
    port: int = option(8006, "WebSocket, /readyz and /metrics port")
    grpc_port: int = option(50006, "gRPC port")
    profile: str = option(
        "tuned", f"accelerator cost profile: {', '.join(PROFILES)}")
    max_batch_size: int = option(
        256, "most decode requests in one batch (1: no batching)")
    max_wait_ms: float = option(
        5.0, "longest the oldest request waits for a batch to fill")
    max_queue: int = option(2048, "decode requests queued before refusal")
    max_streams: int = option(
        1000, "concurrent WebSocket streams before 503")
    max_streams_per_key: int = option(
        1000, "concurrent WebSocket streams one API key may hold")
    max_grpc_streams: int = option(
        1000, "concurrent gRPC streams before RESOURCE_EXHAUSTED")
    matcher: str = option(
        "batched", "the mock's matching: batched (vectorised across a"
        " batch's streams) or per-stream")
    cheaper_compute_scale: float = option(
        0.25, "the cheaper model's device time relative to the full one")
    cheaper_substitution_rate: float = option(
        0.08, "the cheaper model's injected word substitutions, 0 to 1")
    degrade_raise_ms: str = option(
        "50,80,120,160", "p95 queue wait that raises the level to 1-4")
    degrade_lower_ms: str = option(
        "20,40,60,80", "p95 queue wait under which level 1-4 is left")
    degrade_hold_s: float = option(
        3.0, "least time at a level before it is lowered")
    degradation: str = option(
        "on", "on, or off (never degrade, never refuse by queue wait)")
    speech: Settings = field(default_factory=Settings)  # chapter 4's
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    def batching(self) -> BatchingConfig:
        return BatchingConfig(max_batch_size=self.max_batch_size,
                              max_wait_s=self.max_wait_ms / 1000,
                              max_queue=self.max_queue)

    def thresholds(self) -> Thresholds:
        return Thresholds(raise_at_s=seconds(self.degrade_raise_ms),
                          lower_at_s=seconds(self.degrade_lower_ms),
                          hold_s=self.degrade_hold_s)


def seconds(milliseconds: str) -> tuple[float, ...]:
    return tuple(float(ms) / 1000 for ms in milliseconds.split(","))


def parse_pipeline_settings(argv: Sequence[str] | None = None,
                            env: Mapping[str, str] | None = None
                            ) -> PipelineSettings:
    env = dict(os.environ if env is None else env)
    parser = argparse.ArgumentParser(
        prog="python -m ch06_pipeline",
        description="Many streams, one accelerator: chapter 4's"
        " dialects and chapter 5's gRPC service on one batching"
        " pipeline.")
    add_flags(parser, PipelineSettings, "CH06", env)
    args = parser.parse_args(argv)
    checks = [(args.profile in PROFILES,
               f"--profile must be one of {', '.join(PROFILES)}"),
              (args.matcher in ("batched", "per-stream"),
               "--matcher must be batched or per-stream"),
              (args.degradation in ("on", "off"),
               "--degradation must be on or off"),
              (args.max_batch_size >= 1 and args.max_queue >= 1,
               "--max-batch-size and --max-queue must be 1 or more"),
              (args.max_wait_ms >= 0, "--max-wait-ms must be 0 or more")]
    for holds, message in checks:
        if not holds:
            parser.error(message)
    speech = parse_settings([], env)
    settings = PipelineSettings(
        **vars(args), env=env,
        speech=replace(speech, profile=args.profile, host=args.host,
                       port=args.port, max_streams=args.max_streams,
                       max_streams_per_key=args.max_streams_per_key))
    try:
        settings.thresholds()
    except ValueError as error:
        parser.error(f"--degrade-raise-ms/--degrade-lower-ms: {error}")
    return settings
