"""The simulated device: batches queue for it and cost what they hold."""

from __future__ import annotations

import asyncio

import pytest

from ch04_streaming.accelerator import (
    PROFILES,
    Accelerator,
    CostModel,
    DeviceState,
)


class FakeTime:
    """A clock that advances only when the device sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.states: list[DeviceState] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks queue up meanwhile


def test_latency_is_fixed_plus_per_audio_second() -> None:
    cost = CostModel(fixed_ms=20.0, per_audio_s_ms=0.05)
    assert cost.latency_s(0.0) == pytest.approx(0.020)
    assert cost.latency_s(100.0) == pytest.approx(0.025)
    assert PROFILES["tuned"].fixed_ms < PROFILES["eager"].fixed_ms


async def test_batches_run_one_after_another() -> None:
    fake = FakeTime()
    device = Accelerator(CostModel(10.0, 1.0), sleep=fake.sleep,
                         clock=fake.clock)
    latencies = await asyncio.gather(
        device.run(1.0), device.run(2.0), device.run(3.0)
    )
    assert latencies == pytest.approx([0.011, 0.012, 0.013])
    # One device: the second batch waited for the first, and so on.
    assert fake.now == pytest.approx(0.036)
    assert device.batches == 3
    assert device.busy_s == pytest.approx(0.036)


async def test_cold_start_reports_its_state() -> None:
    fake = FakeTime()
    device = Accelerator(PROFILES["zero"], load_s=3.0, warmup_s=1.0,
                         sleep=fake.sleep, clock=fake.clock)
    seen = [device.state]
    starting = asyncio.create_task(device.start())
    for _ in range(2):
        await asyncio.sleep(0)
        seen.append(device.state)
    assert seen == [DeviceState.COLD, DeviceState.LOADING,
                    DeviceState.WARMING]
    await starting
    assert device.ready and fake.now == pytest.approx(4.0)
