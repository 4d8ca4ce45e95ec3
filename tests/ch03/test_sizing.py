"""Right-sizing: streams per device from the cost model, accelerators
scaled from the measured one, and a plain answer when nothing fits."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from ch03_gpu.device import Accelerator, CostModel
from ch03_gpu.dynamic_batcher import DynamicBatcher
from ch03_gpu.profiles import PROFILE
from ch03_gpu.size_lab import main
from ch03_gpu.sizing import (
    CATALOGUE_FILE,
    CatalogueError,
    Load,
    batch_window_s,
    load_catalogue,
    size,
    streams_per_device,
)
from ch03_gpu.virtual_time import run_in_virtual_time

CATALOGUE = load_catalogue()
CHUNK_S = 0.32  # the calibration's shortest chunk
CHUNKS = 30  # per stream: 9.6 s of audio


def slowest_answer_s(cost: CostModel, streams: float,
                     max_busy: float) -> float:
    """Wait one window, then run the batch of what came in it."""
    window = batch_window_s(cost, streams, max_busy)
    batch = cost.latency_s(streams * window)
    assert batch <= max_busy * window + 1e-12  # the device keeps up
    return window + batch


@pytest.mark.parametrize("profile", ["eager", "tuned"])
def test_the_most_streams_just_meet_the_budget(profile: str) -> None:
    cost = PROFILE.cost(profile)
    most = streams_per_device(cost, 0.3, 0.8)
    # eager: ((0.3 - 0.02) 0.8 - 0.02) / (0.3 x 0.00005) = 13,600;
    # tuned: ((0.3 - 0.002) 0.8 - 0.002) / (0.3 x 0.00005) = 15,760.
    assert most == pytest.approx({"eager": 13_600, "tuned": 15_760}[profile])
    assert slowest_answer_s(cost, most, 0.8) == pytest.approx(0.3)
    assert slowest_answer_s(cost, most * 1.01, 0.8) > 0.3
    assert slowest_answer_s(cost, most * 0.5, 0.8) < 0.3


def test_launches_longer_than_the_budget_leave_no_streams() -> None:
    assert streams_per_device(CostModel(20.0, 0.05), 0.02, 0.8) == 0
    assert streams_per_device(CostModel(0.0, 0.0), 0.3) == math.inf


def test_other_accelerators_scale_compute_not_launches() -> None:
    load = Load(streams=1_000, budget_s=0.3)
    by_name = {f.offer.name: f for f in size(PROFILE, "tuned", CATALOGUE,
                                             "bf16", load)}
    t4 = by_name["T4"].cost
    assert t4.fixed_ms == 2.0
    assert t4.per_audio_s_ms == pytest.approx(0.05 * 989 / 65)
    assert by_name["H200"].cost == PROFILE.cost("tuned")


def test_a_large_load_is_spread_over_devices_cheapest_first() -> None:
    load = Load(streams=50_000, budget_s=0.3)
    fits = size(PROFILE, "eager", CATALOGUE, "bf16", load)
    prices = [f.on_demand_per_hour for f in fits]
    assert prices == sorted(prices)
    for f in fits:
        assert f.devices * f.per_device >= 50_000
        assert f.per_device <= streams_per_device(f.cost, 0.3, 0.8)
        assert f.spot_per_hour < f.on_demand_per_hour


def test_fp8_is_a_cost_lever_where_the_hardware_has_it() -> None:
    load = Load(streams=50_000, budget_s=0.3)
    bf16 = size(PROFILE, "eager", CATALOGUE, "bf16", load)
    fp8 = size(PROFILE, "eager", CATALOGUE, "fp8", load)
    assert {f.offer.name for f in fp8} == {"L4", "L40S", "H100", "H200"}
    assert fp8[0].on_demand_per_hour < bf16[0].on_demand_per_hour / 1.5


def test_memory_bounds_streams_when_state_is_large() -> None:
    heavy = PROFILE.model_copy(update={"model": PROFILE.model.model_copy(
        update={"state_bytes_per_stream": 1024**3})})  # 1 GiB a stream
    fits = size(heavy, "tuned", CATALOGUE, "bf16",
                Load(streams=1_000, budget_s=0.3))
    t4 = next(f for f in fits if f.offer.name == "T4")
    assert t4.per_device == 15  # 16 GiB less 0.2 GB of weights


def test_an_impossible_budget_gets_a_plain_answer(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--streams", "10", "--p95-ms", "15", "--profile",
                 "eager"])
    out = capsys.readouterr().out
    assert code == 1
    assert "no accelerator meets it" in out
    assert "launch alone takes 20 ms" in out


def test_a_format_no_accelerator_computes_in_is_named_as_the_cause(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--streams", "10", "--precision", "nvfp4"]) == 1
    out = capsys.readouterr().out
    assert "H200   does not compute in nvfp4" in out
    assert "launch" not in out


def test_memory_too_small_for_the_weights_is_named_as_the_cause(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = CATALOGUE_FILE.read_text()
    assert text.count("memory_gib = ") == 6
    small = tmp_path / "catalogue.toml"
    small.write_text(re.sub(r"memory_gib = \d+", "memory_gib = 0.1", text))
    assert main(["--streams", "10", "--catalogue", str(small)]) == 1
    out = capsys.readouterr().out
    assert "T4     0.1 GiB holds no stream's state beside the weights" in out
    assert "launch" not in out


def test_the_table_and_the_levers_are_printed(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--streams", "20000"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:3] == [
        "accelerator", "instance", "streams/GPU"]
    assert "fp8    L40S x2: $3.72/h" in out
    assert "nvfp4  none of these accelerators computes in it" in out


@pytest.mark.parametrize("flags", [["--streams", "0"],
                                   ["--streams", "5", "--p95-ms", "-1"],
                                   ["--streams", "5", "--precision", "fp2"]])
def test_bad_flags_exit_2(flags: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(flags)
    assert stopped.value.code == 2


@pytest.mark.parametrize(("edit", "problem"), [
    (("on_demand_per_hour = 0.526", "on_demand_per_hour = -1"),
     "greater than 0"),
    (('reference = "H200"', 'reference = "B200"'),
     "no accelerator named 'B200'"),
    (("spot_discount = 0.6", "spot_discount = 1.5"), "less than 1"),
])
def test_a_bad_catalogue_is_refused(tmp_path: Path, edit: tuple[str, str],
                                    problem: str) -> None:
    text = CATALOGUE_FILE.read_text()
    assert edit[0] in text
    bad = tmp_path / "catalogue.toml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(CatalogueError, match=problem):
        load_catalogue(bad)



def slowest_simulated_answer_s(cost: CostModel, streams: int,
                               window_s: float) -> tuple[float, int]:
    """`streams` streams, each sending a chunk of audio every chunk's
    length at its own phase, through chapter 3's dynamic batcher onto
    the device, for 10 s of virtual time: the slowest answer, and how
    many answers came."""
    latencies: list[float] = []

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        device = Accelerator(cost, clock=loop.time)

        async def run_batch(chunks: Sequence[float]) -> Sequence[float]:
            await device.run(sum(chunks))
            return chunks

        def answered(sent: float) -> Callable[[object], None]:
            return lambda _: latencies.append(loop.time() - sent)

        async def stream(phase_s: float,
                         batcher: DynamicBatcher[float, float]) -> None:
            await asyncio.sleep(phase_s)
            for _ in range(CHUNKS):
                answer = batcher.submit(CHUNK_S)
                answer.add_done_callback(answered(loop.time()))
                await asyncio.sleep(CHUNK_S)

        batcher: DynamicBatcher[float, float] = DynamicBatcher(
            run_batch, max_batch_size=100_000, max_wait_s=window_s,
            max_queue=100_000)
        async with batcher:
            await asyncio.gather(*(stream(CHUNK_S * i / streams, batcher)
                                   for i in range(streams)))
    run_in_virtual_time(serve())
    return max(latencies), len(latencies)


def test_the_dynamic_batcher_meets_the_budget_at_the_sized_load(
) -> None:
    """The sizing's closed form, checked on the batcher and device of
    this chapter: at the streams it allows, with its window, no answer
    takes longer than the budget, and the slowest comes close to it;
    30% more streams break it."""
    cost = CostModel(fixed_ms=20.0, per_audio_s_ms=2.0)
    streams = math.floor(streams_per_device(cost, 0.3, 0.8))  # 340
    window = batch_window_s(cost, streams, 0.8)
    slowest, answers = slowest_simulated_answer_s(cost, streams, window)
    assert answers == streams * CHUNKS
    assert 0.28 < slowest <= 0.3 + 1e-9
    over, _ = slowest_simulated_answer_s(cost, streams * 13 // 10, window)
    assert over > 0.3
