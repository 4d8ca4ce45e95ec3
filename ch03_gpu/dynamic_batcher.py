"""Dynamic batching: leave when full or when the oldest has waited.

Chapter 3, "Static vs dynamic vs continuous batching" and "Tuning
batching parameters". Two knobs bound the trade: `max_batch_size` caps
how much work shares one call (memory, and the latency of the call),
and `max_wait_s` caps how long the first item of a batch waits for
company. Under light load batches leave small and on time; under heavy
load they leave full at once. Triton's dynamic batcher and chapter 6's
cross-stream batcher work this way.
"""

from __future__ import annotations

from typing import Generic

from ch03_gpu.batcher import (
    P,
    QueuedBatcher,
    R,
    RunBatch,
    check_batch_size,
    check_wait,
)


class DynamicBatcher(QueuedBatcher[P, R], Generic[P, R]):
    """Batches of up to `max_batch_size`, none waiting over `max_wait_s`
    for the device to be offered it (0: send whatever waits)."""

    def __init__(self, run_batch: RunBatch[P, R], max_batch_size: int,
                 max_wait_s: float, max_queue: int = 1024) -> None:
        check_batch_size("max_batch_size", max_batch_size)
        check_wait("max_wait_s", max_wait_s)
        super().__init__(max_queue)
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s

    # --8<-- [start:dynamic_batcher_loop]
    def _full(self) -> bool:
        return len(self._waiting) >= self.max_batch_size

    async def _serve(self) -> None:
        """Form a batch, run it, repeat: one batch at a time."""
        while await self._wait_for_work():
            # The oldest item sets the deadline: each moment spent
            # waiting for company is latency it pays.
            deadline = self._waiting[0].arrived_s + self.max_wait_s
            await self._wait_until(self._full, deadline)
            batch = self._take(self.max_batch_size)
            await self._run(self.run_batch, batch)
    # --8<-- [end:dynamic_batcher_loop]
