"""The simulated device: batches queue for it and cost what they hold."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ch03_gpu.dcgm import DcgmMetrics
from ch03_gpu.device import Accelerator, BusyWindow, CostModel, DeviceState
from ch03_gpu.memory import (
    MIB,
    DeviceMemory,
    DeviceOutOfMemoryError,
    UnknownAllocationError,
)
from ch03_gpu.profiles import (
    PROFILE,
    PROFILE_FILE,
    PROFILES,
    ProfileError,
    load_profile,
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


async def test_a_batch_over_memory_fails_alone() -> None:
    """Activations that do not fit raise at once, take no device time,
    and the next batch runs as if nothing happened."""
    fake = FakeTime()
    memory = DeviceMemory(capacity_bytes=10 * MIB)
    device = Accelerator(CostModel(10.0, 1.0), sleep=fake.sleep,
                         clock=fake.clock, memory=memory,
                         activation_bytes_per_audio_s=MIB)
    with pytest.raises(DeviceOutOfMemoryError) as refused:
        await device.run(11.0)
    assert str(refused.value) == (
        "out of device memory: batch activations needs 11.0 MiB,"
        " 10.0 MiB free of 10.0 MiB")
    assert (fake.now, device.batches, memory.used_bytes) == (0.0, 0, 0.0)
    assert await device.run(4.0) == pytest.approx(0.014)
    assert device.batches == 1
    assert memory.used_bytes == 0.0  # activations live for a batch


def test_stream_state_is_held_until_dropped() -> None:
    memory = DeviceMemory(capacity_bytes=5 * MIB)
    device = Accelerator(CostModel(1.0, 0.0), memory=memory,
                         state_bytes_per_stream=2 * MIB)
    device.hold_state("a")
    device.hold_state("b")
    with pytest.raises(DeviceOutOfMemoryError, match=r"stream c needs 2\.0"):
        device.hold_state("c")
    device.drop_state("a")
    device.hold_state("c")
    assert memory.used_bytes == 4 * MIB
    with pytest.raises(ValueError, match="stream c already holds"):
        device.hold_state("c")


def test_releasing_what_is_not_held_is_an_error() -> None:
    memory = DeviceMemory(capacity_bytes=MIB)
    memory.reserve("x", 10)
    memory.release("x")
    with pytest.raises(UnknownAllocationError, match="x holds no"):
        memory.release("x")
    with pytest.raises(UnknownAllocationError):
        memory.release("never")
    with pytest.raises(ValueError, match="cannot reserve -1"):
        memory.reserve("y", -1)


async def test_utilisation_is_busy_time_over_the_last_period() -> None:
    """Launch-bound work keeps the device busy while its tensor cores
    idle: 20 ms launches and 5 ms of compute, every 50 ms, read as 50%
    busy and 10% computing over the last second."""
    fake = FakeTime()
    device = Accelerator(CostModel(20.0, 5.0), sleep=fake.sleep,
                         clock=fake.clock)
    for _ in range(40):  # two seconds
        await device.run(1.0)  # 25 ms busy
        fake.now += 0.025  # then idle
    busy, computing = device.utilisation()
    assert busy == pytest.approx(0.5)
    assert computing == pytest.approx(0.1)
    fake.now += 0.5
    assert device.utilisation()[0] == pytest.approx(0.25)
    fake.now += 1.0
    assert device.utilisation() == (0.0, 0.0)


def test_dcgm_metrics_carry_the_exporter_names() -> None:
    fake = FakeTime()
    device = PROFILE.accelerator("tuned", clock=fake.clock)
    device.hold_state("s1")
    registry = CollectorRegistry()
    registry.register(DcgmMetrics(device))
    text = generate_latest(registry).decode()
    samples = {
        s.name: s for family in text_string_to_metric_families(text)
        for s in family.samples}
    weights_mib = PROFILE.model.parameters * 2 / MIB
    state_mib = PROFILE.model.state_bytes_per_stream / MIB
    assert samples["DCGM_FI_DEV_FB_USED"].value == round(
        weights_mib + state_mib)
    assert samples["DCGM_FI_DEV_FB_FREE"].value == round(
        143_771 - weights_mib - state_mib)
    assert samples["DCGM_FI_DEV_GPU_UTIL"].value == 0
    labels = samples["DCGM_FI_DEV_GPU_UTIL"].labels
    assert labels["gpu"] == "0" and labels["device"] == "nvidia0"
    assert labels["modelName"] == "NVIDIA H200"
    assert labels["UUID"].startswith("GPU-")
    assert {"DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"} <= set(samples)


def test_precision_shrinks_weights_and_compute_not_launches() -> None:
    bf16 = PROFILE.cost("tuned", "bf16")
    fp8 = PROFILE.cost("tuned", "fp8")
    assert fp8.fixed_ms == bf16.fixed_ms
    assert fp8.per_audio_s_ms == bf16.per_audio_s_ms / 2
    assert PROFILE.weights_bytes("fp8") == PROFILE.weights_bytes() / 2
    # NVFP4 keeps one fp8 scale per 16 values: 4.5 bits, not 4.
    assert PROFILE.weights_bytes("nvfp4") == pytest.approx(
        PROFILE.model.parameters * 4.5 / 8)


@pytest.mark.parametrize(("edit", "problem"), [
    (("fixed_ms = 2.0", "fixed_ms = -2.0"),
     "profiles.tuned.fixed_ms: Input should be greater than or equal to 0"),
    (("per_audio_s_ms = 0.05\n\n[profiles.tuned]", "\n[profiles.tuned]"),
     "profiles.eager.per_audio_s_ms: Field required"),
    (("memory_mib = 143_771", "memory_mib = 0"),
     "device.memory_mib: Input should be greater than 0"),
    (("[model]", "[modle]"), "model: Field required"),
    (("speedup = 2.0", "speedup = 'fast'"),
     "precisions.fp8.speedup: Input should be a valid number"),
])
def test_a_bad_profile_file_is_refused_with_the_field(
    tmp_path: Path, edit: tuple[str, str], problem: str,
) -> None:
    text = PROFILE_FILE.read_text()
    assert edit[0] in text
    bad = tmp_path / "profiles.toml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ProfileError) as refused:
        load_profile(bad)
    assert problem in str(refused.value)
    assert str(refused.value).startswith(f"{bad}: ")


def test_a_profile_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "profiles.toml"
    bad.write_text("[device\n")
    with pytest.raises(ProfileError, match=r"profiles\.toml: "):
        load_profile(bad)
    with pytest.raises(ProfileError, match="No such file"):
        load_profile(tmp_path / "missing.toml")


def test_the_busy_window_stays_bounded_when_nobody_reads_it() -> None:
    window = BusyWindow(period_s=1.0)
    for i in range(10_000):
        window.add(start=0.01 * i, busy_s=0.005, compute_s=0.001)
    assert len(window._spans) <= 102  # the last second's spans
    busy, _ = window.fractions(now=100.0)
    assert busy == pytest.approx(0.5, abs=0.01)
