"""An LLM's decode on the simulated device: one step, one token each.

Chapter 3, "Static vs dynamic vs continuous batching" and "KV cache as
the central bottleneck". A decode step reads every weight once, however
many sequences share it, plus each sequence's KV cache: its cost is a
fixed part and a part per sequence (`profiles.toml` derives both for an
8B model on an H200). The host must also launch the step's kernels:
eager PyTorch takes longer to launch them than the device takes to run
them, CUDA graph replay does not, so a step lasts the longer of the two
(the `eager` and `tuned` launch costs). A request asks for some number
of new tokens; request-level batching runs a batch until its longest
request is done, with finished sequences riding along as padding, while
iteration-level scheduling calls `step` and lets each sequence leave
when it is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from ch03_gpu.device import Sleep


@dataclass(frozen=True)
class DecodeCostModel:
    """Step latency = fixed + per sequence x sequences in the batch, or
    the host's time to launch the step, whichever is longer."""

    step_fixed_ms: float
    per_sequence_ms: float
    launch_ms: float = 0.0

    def step_s(self, sequences: int) -> float:
        # The host queues kernels ahead of the device, so the two
        # overlap: the slower one sets the pace.
        device_ms = self.step_fixed_ms + self.per_sequence_ms * sequences
        return max(self.launch_ms, device_ms) / 1000


@dataclass(eq=False)
class Generation:
    """One request's decode: how many tokens it wants, how many it has."""

    max_new_tokens: int
    generated: int = 0

    def __post_init__(self) -> None:
        # A request for no tokens would hold a slot and produce
        # nothing: refuse it where it is made, as LLM APIs do.
        if self.max_new_tokens < 1:
            raise ValueError("a decode request must ask for at least one"
                             f" token, got {self.max_new_tokens}")

    @property
    def done(self) -> bool:
        return self.generated >= self.max_new_tokens


@dataclass
class DecodeDevice:
    """One device: steps run one after another, and sleep their cost."""

    cost: DecodeCostModel
    sleep: Sleep = asyncio.sleep
    steps: int = 0
    _turn: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def step(self, batch: Sequence[Generation]) -> list[int | None]:
        """One token for every sequence; each finished one's token
        count, None for the others (iteration-level scheduling)."""
        async with self._turn:
            await self.sleep(self.cost.step_s(len(batch)))
            self.steps += 1
        for generation in batch:
            generation.generated += 1
        return [g.generated if g.done else None for g in batch]

    async def run_to_completion(self, batch: Sequence[Generation]
                                ) -> list[int]:
        """Step the whole batch until its longest request is done
        (request-level batching); every slot costs every step."""
        steps = max(g.max_new_tokens - g.generated for g in batch)
        async with self._turn:
            await self.sleep(steps * self.cost.step_s(len(batch)))
            self.steps += steps
        for generation in batch:
            generation.generated = generation.max_new_tokens
        return [g.generated for g in batch]
