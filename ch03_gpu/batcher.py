"""What every batcher shares: a bounded queue, futures, and shutdown.

Chapter 3, "Static vs dynamic vs continuous batching". A caller submits
one item and gets a future for its result; a batcher decides when
waiting items leave together, and the user's function runs the batch
(the device, chapter 4's recognizer). The three policies differ only in
that decision, so the rest lives here once: the queue's bound (a full
queue refuses with `BatcherFullError`, never grows), failing only the
items of a batch that raised, and a shutdown that finishes accepted
work for a grace period, then cancels what is left.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar

P = TypeVar("P")  # what a caller submits: a chunk of audio, a prompt
R = TypeVar("R")  # what the caller gets back for it
P_contra = TypeVar("P_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)

log = logging.getLogger(__name__)

RunBatch = Callable[[Sequence[P]], Awaitable[Sequence[R]]]
"""Run one batch, return one result per item, in order."""


class BatcherError(Exception):
    """A batcher could not take or finish an item."""


class BatcherFullError(BatcherError):
    """The queue is at its bound: the item was not taken."""

    def __init__(self, capacity: int) -> None:
        super().__init__(
            f"batcher queue is full ({capacity} items waiting): retry"
            " after a short backoff, or send less")
        self.capacity = capacity


class BatcherClosedError(BatcherError):
    """The batcher is shutting down: it takes no new item, and items it
    could not finish within the grace period fail with this."""


class BatchResultError(BatcherError):
    """`run_batch` returned a different number of results than items."""


class Batcher(Protocol[P_contra, R_co]):
    """What a caller of any batching policy sees."""

    def submit(self, payload: P_contra) -> Awaitable[R_co]:
        """Queue one item; await the result. Raises `BatcherFullError`
        at once when the queue is at its bound."""

    async def close(self, grace_s: float = 5.0) -> None:
        """Finish accepted items for up to `grace_s`, cancel the rest."""


@dataclass(eq=False)
class Batchable(Generic[P, R]):
    """One submitted item: what to run, when it came, where to answer."""

    payload: P
    arrived_s: float  # event-loop time
    future: asyncio.Future[R]

    @property
    def abandoned(self) -> bool:
        """The caller stopped waiting (cancelled), or it was answered."""
        return self.future.done()

    def settle(self, result: R) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


def check_batch_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1,"
                         f" got {value!r}")


def check_wait(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value)
            and value >= 0):
        raise ValueError(f"{name} must be a finite number of seconds,"
                         f" zero or more, got {value!r}")


class QueuedBatcher(Generic[P, R]):
    """Admission, queue and lifecycle; a subclass's `_serve` decides
    when items leave. One worker task runs one batch at a time: a
    device runs one anyway, and what arrives meanwhile joins the next.
    Use as `async with`, or call `start()` and `close()`.
    """

    def __init__(self, max_queue: int) -> None:
        check_batch_size("max_queue", max_queue)
        self.max_queue = max_queue
        self._waiting: deque[Batchable[P, R]] = deque()
        self._in_flight: list[Batchable[P, R]] = []
        self._arrival = asyncio.Event()
        self._closing = False
        self._worker: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._serve(), name=type(self).__name__)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def submit(self, payload: P) -> asyncio.Future[R]:
        if self._closing:
            raise BatcherClosedError("batcher is shutting down")
        if len(self._waiting) >= self.max_queue:
            raise BatcherFullError(self.max_queue)
        loop = asyncio.get_running_loop()
        item = Batchable(payload, loop.time(), loop.create_future())
        self._waiting.append(item)
        self._arrival.set()
        return item.future

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop taking items. Accepted ones leave at once without
        waiting for a full batch, for up to `grace_s` (0: none); then
        the worker is cancelled, and every item still waiting or in
        flight fails with `BatcherClosedError`."""
        check_wait("grace_s", grace_s)
        self._closing = True
        self._arrival.set()
        worker = self._worker
        if worker is not None and grace_s > 0:
            await asyncio.wait({worker}, timeout=grace_s)
        if worker is not None and not worker.done():
            worker.cancel()
            await asyncio.wait({worker})
        closed = BatcherClosedError("batcher shut down before this item"
                                    " finished")
        for item in [*self._in_flight, *self._waiting]:
            item.fail(closed)
        self._in_flight.clear()
        self._waiting.clear()
        if worker is not None and not worker.cancelled():
            worker.result()  # a bug in the worker surfaces here

    async def _serve(self) -> None:
        raise NotImplementedError

    def _has_work(self) -> bool:
        return bool(self._waiting)

    async def _wait_for_work(self) -> bool:
        """Wait for something to do; False once closing with none."""
        await self._wait_until(self._has_work)
        return self._has_work()

    async def _wait_until(self, ready: Callable[[], bool],
                          deadline: float | None = None) -> None:
        """Return when `ready()`, at `deadline` (loop time), or when
        closing: a batcher that is shutting down waits for nothing."""
        loop = asyncio.get_running_loop()
        while not (ready() or self._closing):
            if deadline is not None and loop.time() >= deadline:
                return
            self._arrival.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._arrival.wait()
            except TimeoutError:
                return

    def _take(self, count: int) -> list[Batchable[P, R]]:
        """Up to `count` oldest items, skipping those abandoned."""
        taken: list[Batchable[P, R]] = []
        while self._waiting and len(taken) < count:
            item = self._waiting.popleft()
            if not item.abandoned:
                taken.append(item)
        return taken

    async def _run(self, run_batch: RunBatch[P, R],
                   batch: list[Batchable[P, R]]) -> None:
        """Run one batch and answer its items. A batch that raises
        fails its own items only; the batcher goes on serving."""
        if not batch:
            return
        # Kept until the batch ends, so that a cancelling `close` can
        # fail the batch's items.
        self._in_flight = batch
        try:
            results = await run_batch([item.payload for item in batch])
        except Exception as error:
            self._in_flight = []
            log.warning("event=batch_failed size=%d error=%r",
                        len(batch), error)
            for item in batch:
                item.fail(error)
            return
        self._in_flight = []
        if len(results) != len(batch):
            mismatch = BatchResultError(
                f"run_batch returned {len(results)} results for"
                f" {len(batch)} items")
            for item in batch:
                item.fail(mismatch)
            return
        for item, result in zip(batch, results, strict=True):
            item.settle(result)
