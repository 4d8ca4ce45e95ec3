"""The batching lab: virtual time, its workloads, its figures, its CLI."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import numpy as np
import pytest

from ch03_gpu.__main__ import main as ch03_main
from ch03_gpu.arrivals import Arrivals, on_off_gaps, poisson_gaps
from ch03_gpu.batching_cli import main as batching_main
from ch03_gpu.batching_lab import (
    LabSize,
    batching_figures,
    measure,
    sweep_policy,
)
from ch03_gpu.batching_workloads import (
    continuous,
    decode_workload,
    encoder_workload,
    static,
)
from ch03_gpu.llm_decode import DecodeCostModel, DecodeDevice, Generation
from ch03_gpu.profiles import PROFILE
from ch03_gpu.virtual_time import run_in_virtual_time

TINY = LabSize(requests=300, points=3, refine_steps=1)


def test_virtual_time_skips_idle_waits() -> None:
    async def an_hour_of_waiting() -> float:
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    started = time.perf_counter()
    assert run_in_virtual_time(an_hour_of_waiting()) == 3600.0
    assert time.perf_counter() - started < 5  # not an hour


def test_virtual_time_fires_timeouts_at_their_deadline() -> None:
    async def wait_forever_with_a_timeout() -> float:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.25):
                await asyncio.Event().wait()
        return asyncio.get_running_loop().time()

    assert run_in_virtual_time(wait_forever_with_a_timeout()) == 0.25


def test_same_seed_same_figures_other_seed_other_figures() -> None:
    workload = decode_workload("tuned", (10.0,))
    policy = continuous(8)

    def run(seed: int) -> object:
        return measure(workload, policy, "bursty", 10.0, 200, seed)

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_a_step_costs_the_weights_once_and_each_sequence() -> None:
    cost = PROFILE.decode_cost("llama_8b")
    # 16.06 GB of bf16 weights at 4.8 TB/s, plus 1,024 tokens of KV.
    assert cost.step_s(0) == pytest.approx(16.06e9 / 4.8e12, rel=0.01)
    assert cost.step_s(64) - cost.step_s(0) == pytest.approx(
        64 * 1024 * 131_072 / 4.8e12, rel=0.02)


def test_an_eager_step_lasts_its_launch_and_a_graph_step_its_reads(
) -> None:
    eager = PROFILE.decode_cost("llama_8b", "eager")
    tuned = PROFILE.decode_cost("llama_8b", "tuned")
    # Eager: ~20 ms of launches hide the ~3.4-5.1 ms of reads.
    assert eager.step_s(1) == eager.step_s(64) == pytest.approx(0.020)
    # CUDA graphs: 2 ms of launch hides under the reads.
    assert tuned.step_s(1) == pytest.approx(16.06e9 / 4.8e12, rel=0.02)
    assert tuned.step_s(64) > tuned.step_s(1)
    assert DecodeCostModel(1.0, 1.0, launch_ms=5.0).step_s(2) == 0.005
    assert DecodeCostModel(1.0, 1.0, launch_ms=5.0).step_s(9) == 0.010


def test_request_level_decode_runs_until_its_longest_is_done() -> None:
    device = DecodeDevice(DecodeCostModel(3.0, 1.0))
    batch = [Generation(2), Generation(5)]

    async def decode() -> tuple[list[int], float]:
        tokens = await device.run_to_completion(batch)
        return tokens, asyncio.get_running_loop().time()

    tokens, elapsed_s = run_in_virtual_time(decode())
    assert tokens == [2, 5]
    # Five steps of a batch of two: the short one rode along as padding.
    assert elapsed_s == pytest.approx(5 * (3.0 + 2 * 1.0) / 1000)


def test_a_step_releases_finished_sequences() -> None:
    device = DecodeDevice(DecodeCostModel(3.0, 1.0))
    batch = [Generation(1), Generation(2)]
    assert run_in_virtual_time(device.step(batch)) == [1, None]


@pytest.mark.parametrize("tokens", [0, -3])
def test_a_request_for_no_tokens_is_refused(tokens: int) -> None:
    with pytest.raises(ValueError, match="at least one token"):
        Generation(tokens)


@pytest.mark.parametrize("gaps", [poisson_gaps, on_off_gaps])
def test_arrival_processes_keep_their_mean_rate(gaps: Arrivals) -> None:
    drawn = gaps(50.0, 20_000, np.random.default_rng(1))
    assert len(drawn) == 20_000 and (drawn >= 0).all()
    assert 20_000 / drawn.sum() == pytest.approx(50.0, rel=0.1)


def test_bursts_are_burstier_than_poisson() -> None:
    def dispersion(gaps: np.ndarray) -> float:
        counts = np.histogram(np.cumsum(gaps), bins=200)[0]
        return float(counts.var() / counts.mean())

    rng = np.random.default_rng(1)
    assert dispersion(poisson_gaps(50.0, 20_000, rng)) < 2
    assert dispersion(on_off_gaps(50.0, 20_000, rng)) > 5


def test_continuous_outserves_static_on_decode_within_the_bound() -> None:
    workload = decode_workload("tuned", (5.0, 20.0, 80.0))
    both = [sweep_policy(workload, policy, "poisson", TINY)
            for policy in (static(64), continuous(64))]
    static_best, continuous_best = (r.best for r in both)
    assert static_best is not None and continuous_best is not None
    assert continuous_best.work_per_s > 2 * static_best.work_per_s


def test_batching_multiplies_an_eager_encoders_capacity() -> None:
    workload = encoder_workload("eager", (1000.0,))
    one, dynamic = (
        measure(workload, policy, "poisson", 1000.0, 500, 1)
        for policy in (workload.policies[0], workload.policies[2]))
    # ~20 ms a call: one chunk per call serves ~50 a second.
    assert one.throughput_rps == pytest.approx(50, rel=0.1)
    assert one.refused > 0
    assert dynamic.refused == 0 and dynamic.p95_s < 0.3


def test_figures_are_named_and_finite() -> None:
    figures = batching_figures(TINY)
    assert all(math.isfinite(v) for v in figures.values())
    assert figures["continuous_vs_static_throughput_ratio"] > 1
    assert figures["encoder_eager_dynamic_vs_batch_of_one"
                   "_throughput_ratio"] > 10
    # Eager static decode never gets p95 within 10 s: a batch runs to
    # its longest response at 20 ms a token. Capacity still compares.
    assert "decode_eager_static_p95_ms" not in figures
    assert "decode_eager_continuous_vs_static_throughput_ratio" not in (
        figures)
    assert figures["decode_eager_continuous_vs_static_capacity_ratio"] > 1
    assert "decode_tuned_continuous_p95_ms" in figures
    assert "decode_eager_continuous_p95_ms" in figures


def test_cli_prints_the_comparison_and_writes_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "batching.png"
    assert batching_main(["--quick", "--requests", "300", "--plot",
                          str(plot)]) == 0
    out = capsys.readouterr().out
    assert "continuous vs static at p95 <= 10,000 ms" in out
    assert "dynamic vs batch of one at p95 <= 300 ms" in out
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_cli_refuses_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        batching_main(["--requests", "0"])
    assert "--requests must be at least 1" in capsys.readouterr().err


def test_dispatcher_names_its_labs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for words in ([], ["nonesuch"]):
        with pytest.raises(SystemExit) as stopped:
            ch03_main(words)
        assert stopped.value.code == 2
        usage = capsys.readouterr().err
        for lab in ("batching", "coldstart", "memory", "size", "speculate"):
            assert lab in usage
