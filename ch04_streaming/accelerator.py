"""A simulated accelerator: one device, batches run one after another.

Chapter 4 (and chapter 6, which batches across streams). A real GPU
runs one batch at a time, and a batch's latency is a fixed launch cost
plus a cost per second of audio in it. This device reproduces that
timing with `asyncio.sleep`, so it burns no CPU and hundreds of streams
fit on two cores, and it counts its busy time so utilisation can be
measured. Default costs come from measurements of a Conformer encoder on
one NVIDIA H200, quoted in this package's README.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum


# --8<-- [start:cost_model]
@dataclass(frozen=True)
class CostModel:
    """Batch latency = fixed + per audio second x audio in the batch."""

    fixed_ms: float
    per_audio_s_ms: float

    def latency_s(self, audio_s: float) -> float:
        return (self.fixed_ms + self.per_audio_s_ms * audio_s) / 1000


# Measured on one H200, Conformer-L (103.7 M parameters), bf16:
# eager PyTorch is launch-bound at ~20 ms a call whatever the batch;
# CUDA-graph replay costs ~2 ms; both add ~0.05 ms per audio second.
PROFILES = {
    "eager": CostModel(fixed_ms=20.0, per_audio_s_ms=0.05),
    "tuned": CostModel(fixed_ms=2.0, per_audio_s_ms=0.05),
    "zero": CostModel(fixed_ms=0.0, per_audio_s_ms=0.0),
}
# --8<-- [end:cost_model]


class DeviceState(StrEnum):
    COLD = "cold"
    LOADING = "loading"
    WARMING = "warming"
    READY = "ready"


Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Accelerator:
    """One device. `run` waits its turn, then occupies the device."""

    cost: CostModel
    load_s: float = 0.0  # model load at start-up
    warmup_s: float = 0.0  # first, slow batches after loading
    sleep: Sleep = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    state: DeviceState = DeviceState.COLD
    batches: int = 0
    busy_s: float = 0.0
    _turn: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def start(self) -> None:
        """Cold start: load weights, then warm up, then serve."""
        self.state = DeviceState.LOADING
        await self.sleep(self.load_s)
        self.state = DeviceState.WARMING
        await self.sleep(self.warmup_s)
        self.state = DeviceState.READY

    @property
    def ready(self) -> bool:
        return self.state is DeviceState.READY

    async def run(self, audio_s: float) -> float:
        """Occupy the device for one batch; return its latency."""
        async with self._turn:
            latency = self.cost.latency_s(audio_s)
            await self.sleep(latency)
            self.batches += 1
            self.busy_s += latency
            return latency
