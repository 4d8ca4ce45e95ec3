"""A simulated accelerator: one device, batches run one after another.

Chapter 3, "Why GPUs sit idle", and chapter 4, which serves streams on
it (chapter 6 batches across streams). A real GPU runs one batch at a
time, and a batch's latency is a fixed launch cost plus a cost per
second of audio in it. This device reproduces that timing with
`asyncio.sleep`, so it burns no CPU and hundreds of streams fit on two
cores. It holds its memory (weights, per-stream state, a batch's
activations) and accounts for its time the way DCGM reports it: how
much of it the device was busy, and how much of that it computed
rather than waited on launches. Its figures come from `profiles.toml`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from ch03_gpu.memory import DeviceMemory, DeviceOutOfMemoryError
from ch03_gpu.phases import mark


# --8<-- [start:cost_model]
@dataclass(frozen=True)
class CostModel:
    """Batch latency = fixed + per audio second x audio in the batch.

    The fixed part is launching the work (kernel launches, Python): the
    device is busy but computes little. The per-audio-second part is
    the compute, and the only part batching shares out. Measured on an
    H200 (`profiles.toml`): eager PyTorch ~20 ms fixed, CUDA graphs
    ~2 ms, both ~0.05 ms per audio second.
    """

    fixed_ms: float
    per_audio_s_ms: float

    def latency_s(self, audio_s: float) -> float:
        return (self.fixed_ms + self.per_audio_s_ms * audio_s) / 1000

    def compute_s(self, audio_s: float) -> float:
        return self.per_audio_s_ms * audio_s / 1000
# --8<-- [end:cost_model]


class DeviceState(StrEnum):
    COLD = "cold"
    LOADING = "loading"
    WARMING = "warming"
    READY = "ready"


Sleep = Callable[[float], Awaitable[None]]


@dataclass
class BusyWindow:
    """The device's busy intervals of the last `period_s`, as DCGM
    samples utilisation over a period rather than at an instant."""

    period_s: float = 1.0
    _spans: deque[tuple[float, float, float]] = field(
        default_factory=deque, init=False)

    def add(self, start: float, busy_s: float, compute_s: float) -> None:
        self._spans.append((start, start + busy_s, compute_s / busy_s
                            if busy_s > 0 else 0.0))
        # Kept bounded whether or not anyone reads the fractions.
        self._forget_before(start - self.period_s)

    def _forget_before(self, since: float) -> None:
        while self._spans and self._spans[0][1] <= since:
            self._spans.popleft()

    def fractions(self, now: float) -> tuple[float, float]:
        """(busy, computing) shares of the last period, 0 to 1."""
        since = now - self.period_s
        self._forget_before(since)
        busy = computing = 0.0
        for start, end, compute_share in self._spans:
            overlap = max(0.0, min(end, now) - max(start, since))
            busy += overlap
            computing += overlap * compute_share
        return busy / self.period_s, computing / self.period_s


@dataclass
class Accelerator:
    """One device. `run` waits its turn, then occupies the device."""

    cost: CostModel
    load_s: float = 0.0  # model load at start-up
    warmup_s: float = 0.0  # first, slow batches after loading
    sleep: Sleep = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    memory: DeviceMemory = field(default_factory=DeviceMemory.unlimited)
    activation_bytes_per_audio_s: float = 0.0
    state_bytes_per_stream: float = 0.0
    name: str = "NVIDIA H200"
    state: DeviceState = DeviceState.COLD
    batches: int = 0
    busy_s: float = 0.0
    compute_s: float = 0.0
    recent: BusyWindow = field(default_factory=BusyWindow)
    _turn: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def start(self) -> None:
        """Cold start: load weights, then warm up, then serve."""
        if self.ready:
            return  # restored warm: a warm pool's parent loaded it
        self.state = DeviceState.LOADING
        await self.sleep(self.load_s)
        mark("device_loaded")
        self.state = DeviceState.WARMING
        await self.sleep(self.warmup_s)
        mark("device_warm")
        self.state = DeviceState.READY

    @property
    def ready(self) -> bool:
        return self.state is DeviceState.READY

    async def run(self, audio_s: float) -> float:
        """Occupy the device for one batch; return its latency. A batch
        whose activations do not fit raises `DeviceOutOfMemoryError`
        at once, and the next batch runs as usual."""
        async with self._turn:
            latency = self.cost.latency_s(audio_s)
            activations = self.activation_bytes_per_audio_s * audio_s
            with self.memory.holding("batch activations", activations):
                start = self.clock()
                await self.sleep(latency)
            compute = self.cost.compute_s(audio_s)
            self.batches += 1
            self.busy_s += latency
            self.compute_s += compute
            self.recent.add(start, latency, compute)
            return latency

    def check_fits(self, audio_s: float) -> None:
        """Raise `DeviceOutOfMemoryError` now if a batch of `audio_s`
        could not hold its activations: before any work for it starts."""
        needed = self.activation_bytes_per_audio_s * audio_s
        if needed > self.memory.free_bytes:
            raise DeviceOutOfMemoryError(
                "batch activations", needed, self.memory.free_bytes,
                self.memory.capacity_bytes)

    def hold_state(self, stream_id: str) -> None:
        """Keep a stream's state on the device while it is open."""
        self.memory.reserve(f"stream {stream_id}",
                            self.state_bytes_per_stream)

    def drop_state(self, stream_id: str) -> None:
        self.memory.release(f"stream {stream_id}")

    def utilisation(self) -> tuple[float, float]:
        """(busy, computing) shares of the last sampling period."""
        return self.recent.fractions(self.clock())
