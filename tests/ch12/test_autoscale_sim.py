"""`autoscale-sim`: the fleet, the latency model, the figures, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ch03_gpu.gpu_cold_start import GPU_STEPS
from ch12_scaling.autoscale_sim import (
    COLD_START_S,
    RECOMMENDED,
    SimSettings,
    autoscale_figures,
    main,
)
from ch12_scaling.fleet_sim import Fleet
from ch12_scaling.replica_latency import (
    MAX_P95_MS,
    SLO_MS,
    LatencyModel,
    ReplicaCapacity,
    ResultsError,
    load_capacity,
)
from ch12_scaling.scaling_actions import Action, count_flaps
from ch12_scaling.scaling_signals import Minute, signals

REPO = Path(__file__).resolve().parents[2]
QUICK = SimSettings(days=1)


@pytest.fixture(scope="module")
def quick_figures() -> dict[str, object]:
    return autoscale_figures(QUICK)


def model() -> LatencyModel:
    return LatencyModel(ReplicaCapacity(212, 200, 290.2, "bench"))


def test_the_model_passes_through_both_measured_points() -> None:
    latency = model()
    assert latency.p95_ms(212) == pytest.approx(SLO_MS)
    assert latency.p95_ms(200) == pytest.approx(290.2)
    loads = [50, 100, 150, 200, 212, 230, 250]
    p95s = [latency.p95_ms(load) for load in loads]
    assert p95s == sorted(p95s)
    assert latency.p95_ms(212 * 1.25) == MAX_P95_MS  # saturated


def test_a_minute_violates_exactly_past_the_measured_capacity() -> None:
    latency = model()
    assert latency.p95_ms(211.9) <= SLO_MS < latency.p95_ms(212.1)


def test_the_model_reads_chapter_6s_results() -> None:
    capacity = load_capacity()
    assert capacity.streams > capacity.near_streams > 0
    assert capacity.near_p95_ms < SLO_MS


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "is not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"capacity_batching_tuned": 212}', "p95_final_ms_batched_at_200"),
    ('{"capacity_batching_tuned": 212,'
     ' "p95_final_ms_batched_at_200": 310}', "not under 300"),
])
def test_results_that_cannot_anchor_the_model_are_refused(
        tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ch06_pipeline.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ResultsError, match=message):
        load_capacity(path)


def test_the_cold_start_is_one_of_chapter_3s_published_figures() -> None:
    assert any(f"{COLD_START_S:g} s" in step.figure for step in GPU_STEPS)


def test_gpu_utilisation_cannot_tell_full_from_drowning() -> None:
    by_name = {s.name: s for s in signals(model())}
    full, drowning = [Minute(250, 1, 0.0)], [Minute(500, 1, 0.0)]
    assert by_name["gpu_util"].read(full) == by_name["gpu_util"].read(
        drowning) == 1.0
    assert by_name["streams"].read(drowning) == 2 * by_name[
        "streams"].read(full)
    idle, busy = [Minute(10, 1, 0.0)], [Minute(200, 1, 0.0)]
    memory = by_name["memory"]
    assert memory.read(busy) - memory.read(idle) < 0.01  # flat


def test_the_latency_signal_lags_behind_the_load() -> None:
    by_name = {s.name: s for s in signals(model())}
    minutes = [Minute(100, 1, 260.0)] * 4 + [Minute(300, 1, 5000.0)]
    # A five-minute window: the minute that broke is a fifth of it.
    assert by_name["p95_latency"].read(minutes) == pytest.approx(
        (4 * 260.0 + 5000.0) / 5)
    assert by_name["streams"].read(minutes) == 300


def test_a_removed_replica_is_a_starting_one_first() -> None:
    fleet = Fleet.warm(3, cold_start_min=5)
    assert fleet.resize(5, minute=10) == 2
    assert fleet.ready(10) == 3 and fleet.ready(15) == 5
    assert fleet.resize(3, minute=11) == -2
    assert fleet.ready(11) == 3  # the warm ones stayed


def test_a_flap_is_an_action_reversed_within_ten_minutes() -> None:
    actions = [Action(0, 1), Action(5, -1), Action(30, 2), Action(41, -1),
               Action(45, -1), Action(50, 1)]
    assert count_flaps(actions) == 2  # 0 -> 5 and 45 -> 50


def test_the_figures_carry_the_keys_a_benchmark_reads(
        quick_figures: dict[str, object]) -> None:
    for key in ("autoscale_violation_minutes_by_policy",
                "flaps_per_day_with_and_without_hysteresis",
                "replica_hours_by_policy"):
        assert isinstance(quick_figures[key], dict), key
    violations = quick_figures["autoscale_violation_minutes_by_policy"]
    assert isinstance(violations, dict) and RECOMMENDED in violations
    assert len(violations) == 11  # five signals, twice, and the schedule


def test_hysteresis_stops_the_flapping_that_noise_causes(
        quick_figures: dict[str, object]) -> None:
    flaps = quick_figures["flaps_per_day_with_and_without_hysteresis"]
    assert isinstance(flaps, dict)
    assert flaps["with_hysteresis"] == 0
    assert flaps["without_hysteresis"] > 10


def test_a_week_of_the_default_seed_has_no_flap_with_hysteresis() -> None:
    figures = autoscale_figures(SimSettings())
    flaps = figures["flaps_per_day_by_policy"]
    assert isinstance(flaps, dict) and flaps[RECOMMENDED] == 0


def test_a_flat_signal_never_scales_and_misses_the_slo(
        quick_figures: dict[str, object]) -> None:
    violations = quick_figures["autoscale_violation_minutes_by_policy"]
    assert isinstance(violations, dict)
    assert violations["memory_hysteresis"] > 10 * max(
        violations[RECOMMENDED], 1)


def test_the_same_seed_gives_the_same_figures() -> None:
    settings = SimSettings(days=1, seed=3)
    assert autoscale_figures(settings) == autoscale_figures(settings)
    assert autoscale_figures(settings) != autoscale_figures(
        SimSettings(days=1, seed=4))


def test_quick_prints_the_table_and_writes_json_and_plot(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json, out_png = tmp_path / "figures.json", tmp_path / "day.png"
    assert main(["--quick", "--seed", "0", "--json", str(out_json),
                 "--plot", str(out_png)]) == 0
    printed = capsys.readouterr().out
    assert f"{RECOMMENDED} *" in printed
    assert all(len(line) <= 79 for line in printed.splitlines())
    written = json.loads(out_json.read_text(encoding="utf-8"))
    assert written["autoscale_days"] == 1
    assert out_png.read_bytes().startswith(b"\x89PNG")


def test_the_command_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ch12_scaling", "autoscale-sim", "--quick",
         "--cold-start-s", "120"], cwd=REPO, capture_output=True,
        text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "cold start 120 s" in done.stdout


@pytest.mark.parametrize(("flags", "message"), [
    (["--cold-start-s", "-5"], "--cold-start-s"),
    (["--cold-start-s", "soon"], "--cold-start-s"),
    (["--days", "0"], "--days"),
    (["--min-replicas", "6", "--max-replicas", "3"], "--max-replicas"),
    (["--seed", "x"], "--seed"),
])
def test_bad_flags_exit_2_naming_the_flag(
        flags: list[str], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--quick", *flags])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_results_exit_2_naming_the_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--results", str(tmp_path / "none.json")]) == 2
    assert capsys.readouterr().err.startswith("--results: cannot read")
