"""Continuous batching: sequences join and leave at every step.

Chapter 3, "Static vs dynamic vs continuous batching". An LLM produces
a response one step (one token) at a time, and responses differ in
length. Batching whole requests makes every sequence wait for the
longest of its batch, and a new request for the whole batch to end.
Iteration-level scheduling (Orca, then vLLM) instead decides at every
step: finished sequences leave at once and waiting ones take their
slots, so the batch stays full of work that is still needed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic

from ch03_gpu.batcher import (
    Batchable,
    BatchResultError,
    P,
    QueuedBatcher,
    R,
    check_batch_size,
)

log = logging.getLogger(__name__)

Step = Callable[[Sequence[P]], Awaitable[Sequence[R | None]]]
"""Advance each running sequence by one step; for each, its result if
it has finished, None while it goes on (so a result cannot be None)."""


class ContinuousBatcher(QueuedBatcher[P, R], Generic[P, R]):
    """Up to `max_batch_size` sequences in the running batch; `step`
    advances them all and says which have finished."""

    def __init__(self, step: Step[P, R], max_batch_size: int,
                 max_queue: int = 1024) -> None:
        check_batch_size("max_batch_size", max_batch_size)
        super().__init__(max_queue)
        self.step = step
        self.max_batch_size = max_batch_size

    @property
    def running(self) -> int:
        return len(self._in_flight)

    def _has_work(self) -> bool:
        return bool(self._waiting or self._in_flight)

    # --8<-- [start:continuous_batching_step]
    async def _serve(self) -> None:
        """One step at a time, admitting and releasing at every step."""
        while await self._wait_for_work():
            # Drop sequences whose callers stopped waiting, then fill
            # the free slots from the queue.
            running = [s for s in self._in_flight if not s.abandoned]
            running += self._take(self.max_batch_size - len(running))
            self._in_flight = running
            outcomes = await self._step(running)
            # Finished sequences leave now: their slots refill next
            # step, not when the longest sequence is done.
            self._in_flight = []
            for seq, result in zip(running, outcomes, strict=True):
                if result is None:
                    self._in_flight.append(seq)
                else:
                    seq.settle(result)
    # --8<-- [end:continuous_batching_step]

    async def _step(self, running: list[Batchable[P, R]]
                    ) -> Sequence[R | None]:
        """Run one step. A step that raises, or answers for the wrong
        number of sequences, fails the running sequences only."""
        if not running:
            return []
        try:
            outcomes = await self.step([seq.payload for seq in running])
            if len(outcomes) != len(running):
                raise BatchResultError(
                    f"step returned {len(outcomes)} outcomes for"
                    f" {len(running)} sequences")
        except Exception as error:
            log.warning("event=step_failed size=%d error=%r",
                        len(running), error)
            for seq in running:
                seq.fail(error)
            # Their futures are done now: the next step drops them.
            return [None] * len(running)
        return outcomes
