"""Static batching: a batch of a fixed size leaves only when full.

Chapter 3, "Static vs dynamic vs continuous batching". The oldest
policy, and the baseline: collect exactly `batch_size` items, run them
together, repeat. Under heavy load every batch is full and the device
is used well; under light load the first item waits for the last one to
arrive, and nothing bounds that wait but `flush()` and shutdown. For
multi-step work (an LLM's decode) the batch then runs until its longest
member is done: that is the `run_batch` the benchmark gives it.
"""

from __future__ import annotations

from typing import Generic

from ch03_gpu.batcher import P, QueuedBatcher, R, RunBatch, check_batch_size


class StaticBatcher(QueuedBatcher[P, R], Generic[P, R]):
    """Run `batch_size` items at a time, and never fewer unless asked."""

    def __init__(self, run_batch: RunBatch[P, R], batch_size: int,
                 max_queue: int = 1024) -> None:
        check_batch_size("batch_size", batch_size)
        super().__init__(max_queue)
        self.run_batch = run_batch
        self.batch_size = batch_size
        self._flush_requested = False

    def flush(self) -> None:
        """Send the items waiting now as one batch, even if not full."""
        self._flush_requested = True
        self._arrival.set()

    def _full_or_flushed(self) -> bool:
        return (len(self._waiting) >= self.batch_size
                or self._flush_requested)

    async def _serve(self) -> None:
        while await self._wait_for_work():
            await self._wait_until(self._full_or_flushed)
            self._flush_requested = False
            await self._run(self.run_batch, self._take(self.batch_size))
