"""The cold-start lab: real starts of chapter 4's service, timed by
phase, and the tables, figures and timeline made from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ch03_gpu import __main__ as labs
from ch03_gpu.coldstart_lab import ANATOMY, FAILOVER, Run, cold_start
from ch03_gpu.coldstart_lab import load_fixture as fixture_pcm
from ch03_gpu.coldstart_report import (
    anatomy_table,
    draw_timeline,
    gpu_table,
    mitigation_table,
)
from ch03_gpu.coldstart_study import (
    WORKER_LAZY,
    Study,
    figures,
)
from examples.fixtures import load_manifest

ORDER = ("spawn", "main", "imported", "built", "listening", "matcher_up",
         "lexicon_loaded", "device_loaded", "device_warm", "ready",
         "ready_seen", "first_result")


async def test_a_cold_start_marks_its_phases_in_order(
        tmp_path: Path) -> None:
    run = await cold_start(("--load-s", "0.05", "--warmup-s", "0.05"),
                           fixture_pcm(), tmp_path)
    times = [run.at[phase] for phase in ORDER]
    assert times == sorted(times)
    assert run.transcript == load_manifest().get("quick_brown_fox").text
    # The simulated device load. uvloop counts timers in whole ms from
    # when its loop iteration began, so a 50 ms sleep may end a hair
    # under 50 ms after the call: allow one ms.
    assert run.seconds(ANATOMY[5]) >= 0.05 - 0.001


def test_the_matcher_process_imports_no_server_and_no_audio_io() -> None:
    modules = subprocess.run(
        [sys.executable, "-c",
         "; ".join(f"import {m}" for m in WORKER_LAZY)
         + "; import sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    loaded = set(modules.split())
    assert {"websockets", "pydantic", "soundfile"}.isdisjoint(loaded)


def synthetic_run(phases: tuple[str, ...], begin: str, step_s: float
                  ) -> Run:
    at = {name: i * step_s for i, name in enumerate(phases)}
    at[begin] = 0.0
    return Run(at, "the quick brown fox")


def synthetic_study() -> Study:
    cold = synthetic_run(ORDER, "spawn", 0.1)
    slow_lexicon = Run({**cold.at, **{
        p: cold.at[p] + 0.2 for p in ORDER[ORDER.index("lexicon_loaded"):]
    }}, cold.transcript)
    failover = synthetic_run(
        ("lost", "activated", "listening", "first_result"), "lost", 0.01)
    return Study(
        cold={"as shipped": [cold, cold],
              "templates built at start": [slow_lexicon],
              "ready before warm-up": [cold]},
        failovers=[failover],
        worker_imports_s=(0.3, 0.2), worker_import_times_s=(0.25, 0.1))


def test_figures_are_named_finite_and_in_milliseconds() -> None:
    found = figures(synthetic_study())
    assert found["cold_start_first_result_ms"] == pytest.approx(1100)
    assert found["warm_pool_first_result_ms"] == pytest.approx(30)
    assert found["load_cache_lexicon_saving_ms"] == pytest.approx(200)
    assert found["lazy_import_worker_saving_ms"] == pytest.approx(100)
    assert found["phase_imports_ms"] == pytest.approx(100)
    assert found["warm_pool_percent_of_cold_start"] == pytest.approx(
        100 * 30 / 1100, abs=1e-3)
    assert len([n for n in found if n.startswith("phase_")]) == len(ANATOMY)
    assert len([n for n in found if n.startswith("warm_pool_") and
                n.removeprefix("warm_pool_").removesuffix("_ms")
                in {"loss_noticed_spare_told", "spare_starts_serving",
                    "first_stream"}]) == len(FAILOVER)


def test_tables_and_timeline_are_made(tmp_path: Path) -> None:
    study = synthetic_study()
    anatomy = anatomy_table(study.shipped)
    assert "device load (simulated)" in anatomy
    assert "spawn -> first result" in anatomy
    mitigations = mitigation_table(study)
    assert "2.7% of the time a cold start takes" in mitigations
    gpu = gpu_table(study)
    assert "Modal, 2025-07" in gpu
    assert "warm-pool takeover: 30 ms" in gpu
    assert max(len(line) for line in gpu.splitlines()) <= 79
    drawn = draw_timeline(study, tmp_path / "timeline.png")
    assert drawn.read_bytes().startswith(b"\x89PNG")


def test_the_dispatcher_names_its_labs(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as unknown:
        labs.main(["nonsense"])
    assert unknown.value.code == 2
    assert "coldstart" in capsys.readouterr().err
    with pytest.raises(SystemExit) as no_runs:
        labs.main(["coldstart", "--runs", "0"])
    assert no_runs.value.code == 2


def test_one_run_of_the_lab_prints_every_table(tmp_path: Path) -> None:
    timeline = tmp_path / "t.png"
    done = subprocess.run(
        [sys.executable, "-m", "ch03_gpu", "coldstart", "--runs", "1",
         "--timeline", str(timeline)],
        capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-2000:]
    for heading in ("Cold start of python -m ch04_streaming",
                    "Mitigations", "on a GPU"):
        assert heading in done.stdout
    assert timeline.exists()


