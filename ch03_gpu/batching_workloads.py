"""The batching lab's workloads and the policies it compares on them.

Chapter 3, "Static vs dynamic vs continuous batching". Two workloads
bracket what a serving team meets. A streaming speech encoder: every
request is one 1 s chunk of audio, finished in one call, whose cost is
the measured H200 profile (`eager`: ~20 ms a call, `tuned`: ~2 ms).
An LLM's decode: every request wants a number of new tokens, one step
each, and a step costs the derived `llama_8b` profile, launched as the
`eager` or the `tuned` profile launches its calls. Every policy
gets the same batch cap, so the comparison is of when batches leave,
not of how big they may grow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ch03_gpu.batcher import QueuedBatcher
from ch03_gpu.continuous_batcher import ContinuousBatcher
from ch03_gpu.device import Accelerator
from ch03_gpu.dynamic_batcher import DynamicBatcher
from ch03_gpu.llm_decode import DecodeDevice, Generation
from ch03_gpu.profiles import PROFILE
from ch03_gpu.static_batcher import StaticBatcher

CHUNK_S = 1.0  # audio per encoder request
MAX_BATCH = 64  # every policy's cap, on both workloads
# Waiting requests; one more is refused. A queue that holds more than
# the device serves within the latency bound only adds latency.
MAX_QUEUE = 256
ENCODER_BOUND_S = 0.300  # the book's latency budget for a result
DECODE_BOUND_S = 10.0  # a whole response that is not streamed
MEAN_NEW_TOKENS = 128
DECODE_MODEL = "llama_8b"
MAX_NEW_TOKENS = 1024


class Engine(Protocol):
    """What the policies run: whole requests, or one step of them."""

    async def run_batch(self, batch: Sequence[Any]) -> Sequence[Any]: ...

    async def step(self, batch: Sequence[Any]) -> Sequence[Any | None]: ...


class EncoderEngine:
    """An encoder on the device: one call finishes every chunk in it,
    so one step and one whole batch are the same thing."""

    def __init__(self, device: Accelerator) -> None:
        self.device = device

    async def run_batch(self, chunks: Sequence[float]) -> list[float]:
        latency = await self.device.run(sum(chunks))
        return [latency] * len(chunks)

    async def step(self, chunks: Sequence[float]) -> list[float | None]:
        return list(await self.run_batch(chunks))


class DecodeEngine:
    """An LLM's decode: whole requests run until the batch's longest is
    done; a step advances each sequence by one token."""

    def __init__(self, device: DecodeDevice) -> None:
        self.device = device

    async def run_batch(self, batch: Sequence[Generation]) -> list[int]:
        return await self.device.run_to_completion(batch)

    async def step(self, batch: Sequence[Generation]) -> list[int | None]:
        return await self.device.step(batch)


@dataclass(frozen=True)
class Policy:
    name: str
    setting: str  # its knobs, as the table prints them
    build: Callable[[Engine], QueuedBatcher[Any, Any]]


@dataclass(frozen=True)
class Workload:
    name: str
    profile: str
    unit: str  # of work: what throughput counts
    bound_s: float  # the p95 latency bound of the comparison
    rates: tuple[float, ...]  # offered loads, requests per second
    policies: tuple[Policy, ...]
    new_request: Callable[[np.random.Generator], Any]
    work: Callable[[Any], float]  # units of work in one request
    new_engine: Callable[[], Engine]


def batch_of_one() -> Policy:
    return Policy("batch of one", "batch 1", lambda engine: StaticBatcher(
        engine.run_batch, 1, max_queue=MAX_QUEUE))


def static(batch: int) -> Policy:
    return Policy("static", f"batch {batch}", lambda engine: StaticBatcher(
        engine.run_batch, batch, max_queue=MAX_QUEUE))


def dynamic(batch: int, wait_s: float) -> Policy:
    return Policy(
        "dynamic", f"max {batch}, wait {wait_s * 1000:g} ms",
        lambda engine: DynamicBatcher(
            engine.run_batch, batch, wait_s, max_queue=MAX_QUEUE))


def continuous(batch: int) -> Policy:
    return Policy(
        "continuous", f"max {batch}", lambda engine: ContinuousBatcher(
            engine.step, batch, max_queue=MAX_QUEUE))


def encoder_engine(profile: str) -> Callable[[], Engine]:
    def build() -> Engine:
        loop = asyncio.get_running_loop()
        return EncoderEngine(PROFILE.accelerator(profile, clock=loop.time))
    return build


def decode_engine(launch: str) -> Callable[[], Engine]:
    cost = PROFILE.decode_cost(DECODE_MODEL, launch)
    return lambda: DecodeEngine(DecodeDevice(cost))


def new_generation(rng: np.random.Generator) -> Generation:
    """Output lengths: geometric with mean 128 tokens, capped at 1,024:
    mostly short answers, and a long tail."""
    tokens = int(rng.geometric(1 / MEAN_NEW_TOKENS))
    return Generation(min(tokens, MAX_NEW_TOKENS))


def encoder_workload(profile: str, rates: tuple[float, ...],
                     bound_s: float = ENCODER_BOUND_S) -> Workload:
    # On a one-step workload, continuous batching is dynamic batching
    # that never waits: it runs whatever is queued when the device is
    # free. It stays in the comparison to show exactly that.
    return Workload(
        "encoder", profile, "audio s", bound_s, rates,
        (batch_of_one(), static(MAX_BATCH), dynamic(MAX_BATCH, 0.010),
         continuous(MAX_BATCH)),
        new_request=lambda rng: CHUNK_S, work=lambda chunk: chunk,
        new_engine=encoder_engine(profile))


def decode_workload(profile: str, rates: tuple[float, ...],
                    bound_s: float = DECODE_BOUND_S) -> Workload:
    return Workload(
        "decode", profile, "tokens", bound_s, rates,
        (static(MAX_BATCH), dynamic(MAX_BATCH, 0.050),
         continuous(MAX_BATCH)),
        new_request=new_generation,
        work=lambda generation: generation.max_new_tokens,
        new_engine=decode_engine(profile))


def geometric(low: float, high: float, count: int) -> tuple[float, ...]:
    return tuple(float(r) for r in np.geomspace(low, high, count))


def all_workloads(points: int, encoder_bound_s: float = ENCODER_BOUND_S,
                  decode_bound_s: float = DECODE_BOUND_S
                  ) -> list[Workload]:
    """The swept workloads, `points` offered loads each (requests per
    second), from where batching does not matter yet to beyond the
    best policy's capacity."""
    return [
        encoder_workload("eager", geometric(10, 4000, points),
                         encoder_bound_s),
        encoder_workload("tuned", geometric(100, 16000, points),
                         encoder_bound_s),
        decode_workload("eager", geometric(0.5, 60, points),
                        decode_bound_s),
        decode_workload("tuned", geometric(2, 120, points),
                        decode_bound_s),
    ]
