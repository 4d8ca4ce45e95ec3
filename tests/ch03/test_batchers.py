"""The batching policies: when batches leave, and what callers get.

Timing tests run on the virtual-time loop, where a batch that leaves
at its deadline leaves at exactly that time; the others run on the
ordinary loop with every wait bounded.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from ch03_gpu.batcher import (
    BatcherClosedError,
    BatcherFullError,
    BatchResultError,
    QueuedBatcher,
)
from ch03_gpu.continuous_batcher import ContinuousBatcher
from ch03_gpu.dynamic_batcher import DynamicBatcher
from ch03_gpu.static_batcher import StaticBatcher
from ch03_gpu.virtual_time import run_in_virtual_time

BOUND_S = 2.0  # real time: any wait in these tests ends well before


class Device:
    """Records each batch and when it started; costs `cost_s` a call;
    answers each item x with 10 x; fails a batch holding `poison`."""

    def __init__(self, cost_s: float = 0.5, poison: int | None = None):
        self.cost_s = cost_s
        self.poison = poison
        self.batches: list[tuple[float, list[int]]] = []

    async def run_batch(self, batch: Sequence[int]) -> list[int]:
        self.batches.append((asyncio.get_running_loop().time(),
                             list(batch)))
        await asyncio.sleep(self.cost_s)
        if self.poison in batch:
            raise RuntimeError("device fault")
        return [10 * item for item in batch]

    async def step(self, batch: Sequence[int]) -> list[int | None]:
        """One-step work: every item finishes in its first step."""
        return list(await self.run_batch(batch))


Build = Callable[[Device, int], QueuedBatcher[int, int]]

POLICIES: dict[str, Build] = {
    "static": lambda d, q: StaticBatcher(d.run_batch, 2, max_queue=q),
    "dynamic": lambda d, q: DynamicBatcher(d.run_batch, 2, 0.25,
                                           max_queue=q),
    "continuous": lambda d, q: ContinuousBatcher(d.step, 2, max_queue=q),
}


def now() -> float:
    return asyncio.get_running_loop().time()


# Static batching


def test_static_batch_waits_until_full() -> None:
    device = Device()

    async def scenario() -> list[int]:
        async with StaticBatcher(device.run_batch, 3) as batcher:
            first = [batcher.submit(i) for i in (1, 2)]
            await asyncio.sleep(60)  # an hour would do as well
            assert device.batches == []
            last = batcher.submit(3)
            return list(await asyncio.gather(*first, last))

    assert run_in_virtual_time(scenario()) == [10, 20, 30]
    assert device.batches == [(60.0, [1, 2, 3])]


def test_static_flush_sends_what_waits() -> None:
    device = Device()

    async def scenario() -> int:
        async with StaticBatcher(device.run_batch, 3) as batcher:
            future = batcher.submit(7)
            await asyncio.sleep(1)
            batcher.flush()
            return await future

    assert run_in_virtual_time(scenario()) == 70
    assert device.batches == [(1.0, [7])]


# Dynamic batching


def test_dynamic_batch_leaves_at_once_when_full() -> None:
    device = Device()

    async def scenario() -> None:
        async with DynamicBatcher(device.run_batch, 2, 10.0) as batcher:
            await asyncio.gather(batcher.submit(1), batcher.submit(2))

    run_in_virtual_time(scenario())
    assert device.batches == [(0.0, [1, 2])]  # no waiting for 10 s


def test_dynamic_batch_leaves_when_oldest_has_waited_max_wait() -> None:
    device = Device()

    async def scenario() -> None:
        async with DynamicBatcher(device.run_batch, 4, 0.25) as batcher:
            first = batcher.submit(1)
            await asyncio.sleep(0.125)
            await asyncio.gather(first, batcher.submit(2))

    run_in_virtual_time(scenario())
    # The oldest came at 0: its batch leaves at 0.25 exactly, not full.
    assert device.batches == [(0.25, [1, 2])]


def test_dynamic_items_that_came_during_a_batch_leave_when_it_ends() -> None:
    device = Device(cost_s=0.5)

    async def scenario() -> None:
        async with DynamicBatcher(device.run_batch, 4, 0.25) as batcher:
            first = batcher.submit(1)
            await asyncio.sleep(0.375)  # first batch runs 0.25 to 0.75
            await asyncio.gather(first, batcher.submit(2))

    run_in_virtual_time(scenario())
    # Item 2 waited past its deadline (0.625) for the device: it goes
    # as soon as the device is free, without a second wait.
    assert device.batches == [(0.25, [1]), (0.75, [2])]


def test_dynamic_zero_wait_sends_whatever_waits() -> None:
    device = Device()

    async def scenario() -> None:
        async with DynamicBatcher(device.run_batch, 4, 0.0) as batcher:
            await batcher.submit(1)

    run_in_virtual_time(scenario())
    assert device.batches == [(0.0, [1])]


# Continuous batching


class Decoder:
    """Sequence i needs `lengths[i]` steps of 1 s; records each step's
    running batch, and when each sequence finished."""

    def __init__(self, lengths: dict[int, int]) -> None:
        self.left = dict(lengths)
        self.steps: list[list[int]] = []
        self.finished: dict[int, float] = {}

    async def step(self, batch: Sequence[int]) -> list[int | None]:
        self.steps.append(list(batch))
        await asyncio.sleep(1.0)
        outcomes: list[int | None] = []
        for seq in batch:
            self.left[seq] -= 1
            done = self.left[seq] == 0
            if done:
                self.finished[seq] = now()
            outcomes.append(seq if done else None)
        return outcomes


def test_continuous_admits_every_step_and_releases_at_once() -> None:
    decoder = Decoder({1: 3, 2: 1, 3: 2})

    async def scenario() -> dict[int, float]:
        answered: dict[int, float] = {}
        async with ContinuousBatcher(decoder.step, 2) as batcher:
            futures = [batcher.submit(1), batcher.submit(2)]
            await asyncio.sleep(0.5)  # 3 arrives during the first step
            futures.append(batcher.submit(3))
            for future in asyncio.as_completed(futures):
                seq = await future
                answered[seq] = now()
        return answered

    answered = run_in_virtual_time(scenario())
    # 2 leaves after one step and 3 takes its slot at the next step,
    # while 1 is still running: the batch never waits for its longest.
    assert decoder.steps == [[1, 2], [1, 3], [1, 3]]
    assert answered == {2: 1.0, 1: 3.0, 3: 3.0}


def test_continuous_waits_for_a_free_slot() -> None:
    decoder = Decoder({1: 2, 2: 2, 3: 1})

    async def scenario() -> None:
        async with ContinuousBatcher(decoder.step, 2) as batcher:
            await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3)))

    run_in_virtual_time(scenario())
    assert decoder.steps == [[1, 2], [1, 2], [3]]


def test_continuous_drops_a_sequence_whose_caller_left() -> None:
    decoder = Decoder({1: 3, 2: 3})

    async def scenario() -> None:
        async with ContinuousBatcher(decoder.step, 2) as batcher:
            keep, leave = batcher.submit(1), batcher.submit(2)
            await asyncio.sleep(1.5)
            leave.cancel()
            await keep

    run_in_virtual_time(scenario())
    assert decoder.steps == [[1, 2], [1, 2], [1]]  # its slot is freed


# Every policy


@pytest.mark.parametrize("policy", POLICIES)
async def test_a_full_queue_refuses_with_a_typed_error(policy: str) -> None:
    batcher = POLICIES[policy](Device(), 2)  # not started: nothing leaves
    batcher.submit(1)
    batcher.submit(2)
    with pytest.raises(BatcherFullError, match="retry") as refused:
        batcher.submit(3)
    assert refused.value.capacity == 2
    await batcher.close(grace_s=0)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_failing_batch_fails_only_its_items(policy: str) -> None:
    device = Device(poison=3)

    async def scenario() -> list[Any]:
        async with POLICIES[policy](device, 16) as batcher:
            # 1 and 2 form the first batch, 3 and 4 the failing second,
            # 5 and 6 the third: the batcher went on serving.
            futures = [batcher.submit(i) for i in range(1, 7)]
            return await asyncio.gather(*futures, return_exceptions=True)

    results = run_in_virtual_time(scenario())
    assert results[:2] == [10, 20] and results[4:] == [50, 60]
    assert all(isinstance(r, RuntimeError) for r in results[2:4])


async def test_a_wrong_number_of_results_fails_the_batch() -> None:
    async def short(batch: Sequence[int]) -> list[int]:
        return [1]

    async with DynamicBatcher(short, 2, 0.0) as batcher:
        futures = [batcher.submit(1), batcher.submit(2)]
        async with asyncio.timeout(BOUND_S):
            results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, BatchResultError) for r in results)


async def test_a_wrong_number_of_step_outcomes_fails_the_step() -> None:
    async def short(batch: Sequence[int]) -> list[int | None]:
        return []

    async with ContinuousBatcher(short, 2) as batcher:
        async with asyncio.timeout(BOUND_S):
            with pytest.raises(BatchResultError):
                await batcher.submit(1)


@pytest.mark.parametrize("policy", POLICIES)
def test_close_drains_accepted_items_then_refuses(policy: str) -> None:
    device = Device()

    async def scenario() -> list[int]:
        batcher = POLICIES[policy](device, 16)
        batcher.start()
        futures = [batcher.submit(i) for i in (1, 2, 3)]
        await batcher.close(grace_s=5.0)
        with pytest.raises(BatcherClosedError):
            batcher.submit(4)
        return [f.result() for f in futures]

    # Static batching's partial batch [3] leaves at close, not stranded.
    assert run_in_virtual_time(scenario()) == [10, 20, 30]


@pytest.mark.parametrize("policy", POLICIES)
def test_close_after_grace_fails_what_is_left(policy: str) -> None:
    device = Device(cost_s=10.0)

    async def scenario() -> list[Any]:
        batcher = POLICIES[policy](device, 16)
        batcher.start()
        futures = [batcher.submit(i) for i in (1, 2, 3)]
        await asyncio.sleep(0)  # the first batch starts
        await batcher.close(grace_s=1.0)
        assert now() == 1.0  # it did not wait for the 10 s batch
        return await asyncio.gather(*futures, return_exceptions=True)

    results = run_in_virtual_time(scenario())
    assert all(isinstance(r, BatcherClosedError) for r in results)


async def test_close_without_grace_cancels_at_once() -> None:
    started = asyncio.Event()

    async def endless(batch: Sequence[int]) -> list[int]:
        started.set()
        await asyncio.Event().wait()  # a device that never answers
        return list(batch)

    batcher = DynamicBatcher(endless, 1, 0.0)
    batcher.start()
    running, waiting = batcher.submit(1), batcher.submit(2)
    async with asyncio.timeout(BOUND_S):
        await started.wait()
        await batcher.close(grace_s=0)
    for future in (running, waiting):
        with pytest.raises(BatcherClosedError):
            future.result()


def test_an_abandoned_item_is_not_run() -> None:
    device = Device()

    async def scenario() -> None:
        async with StaticBatcher(device.run_batch, 2) as batcher:
            gone = batcher.submit(1)
            gone.cancel()  # the caller gave up while it waited
            await asyncio.gather(batcher.submit(2), batcher.submit(3))

    run_in_virtual_time(scenario())
    assert device.batches == [(0.0, [2, 3])]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_batch_sizes_below_one_or_not_whole_are_refused(bad: Any) -> None:
    device = Device()
    with pytest.raises(ValueError, match="batch_size"):
        StaticBatcher(device.run_batch, bad)
    with pytest.raises(ValueError, match="max_batch_size"):
        DynamicBatcher(device.run_batch, bad, 0.1)
    with pytest.raises(ValueError, match="max_batch_size"):
        ContinuousBatcher(device.step, bad)
    with pytest.raises(ValueError, match="max_queue"):
        StaticBatcher(device.run_batch, 1, max_queue=bad)


@pytest.mark.parametrize("bad", [-0.001, math.nan, math.inf])
def test_a_negative_or_endless_max_wait_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="max_wait_s"):
        DynamicBatcher(Device().run_batch, 4, bad)


async def test_a_negative_grace_is_refused() -> None:
    batcher = StaticBatcher(Device().run_batch, 1)
    with pytest.raises(ValueError, match="grace_s"):
        await batcher.close(grace_s=-1)
    await batcher.close(grace_s=0)
