"""What a latency target costs, from benchmark results, never beyond."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ch11_slo.__main__ import main
from ch11_slo.target_cost import (
    Capacity,
    Measured,
    Series,
    capacity,
    target_cost_report,
)
from tests.ch11.commands import exit_status, readme_block
from tests.ch11.promtool import REPO_ROOT

MACHINE = {"cpu": "Test CPU", "cores": 2, "git_commit": "abc1234",
           "recorded_at": "2026-01-02T03:04:05+00:00"}
HAND = Series("hand.json", "p95", "test latency", r"p95_ms_at_(\d+)",
              {})
SEARCHED = Series("searched.json", "p99", "searched latency",
                  r"p99_ms_at_(\d+)", {100.0: "capacity_100ms"})
LINE = [Measured(100, 50.0), Measured(300, 250.0)]


def test_between_two_loads_the_target_is_interpolated() -> None:
    # 150 ms is halfway from 50 to 250 ms: halfway from 100 to 300
    assert capacity(LINE, 150) == Capacity(150, 200, False,
                                           "100 to 300 streams")
    # a quarter of the way: 100 + 200 / 4
    assert capacity(LINE, 100).streams == 150
    # 51 ms: 100 + 200 / 200 = 101
    assert capacity(LINE, 51).streams == 101


def test_a_target_tighter_than_every_load_is_not_measured() -> None:
    assert capacity(LINE, 40) == Capacity(
        40, None, False, "100 streams took 50 ms")


def test_a_search_says_nothing_of_a_tighter_target() -> None:
    searched = [Measured(212, 300.0, searched=True)]
    assert capacity(searched, 100) == Capacity(
        100, None, False, "212 streams only known within 300 ms")
    assert capacity([], 100) == Capacity(100, None, False,
                                         "nothing measured")


def test_a_target_the_heaviest_load_met_is_a_floor() -> None:
    assert capacity(LINE, 800) == Capacity(800, 300, True,
                                           "no load measured missed it")
    assert capacity(LINE, 250) == Capacity(250, 300, True,
                                           "no load measured missed it")


def test_a_search_answers_its_own_target_and_anchors_the_rest() -> None:
    measured = [Measured(50, 4.0), Measured(200, 20.0),
                Measured(300, 100.0, searched=True), Measured(500, 900.0)]
    assert capacity(measured, 100) == Capacity(100, 300, False,
                                               "the benchmark's search")
    # from 300 streams at 100 ms (the most the search allows) to 500
    # at 900 ms: 500 ms is half-way, 400 streams
    assert capacity(measured, 500) == Capacity(
        500, 400, False, "300 (search) to 500 streams")
    # the search says nothing of 10 ms: 50 + 150 x 6 / 16 = 106.25
    assert capacity(measured, 10) == Capacity(10, 106, False,
                                              "50 to 200 streams")


def test_the_first_load_beyond_the_target_ends_the_search() -> None:
    # 300 streams met 120 ms after 200 missed it: noise, not capacity
    measured = [Measured(100, 50.0), Measured(200, 150.0),
                Measured(300, 120.0)]
    assert capacity(measured, 130) == Capacity(130, 180, False,
                                               "100 to 200 streams")


def test_machines_are_rounded_up() -> None:
    assert Capacity(100, 300, False, "").machines(1000) == 4
    assert Capacity(100, 250, False, "").machines(1000) == 4
    assert Capacity(100, 251, False, "").machines(1000) == 4
    assert Capacity(100, 200, False, "").machines(1000) == 5
    assert Capacity(100, None, False, "").machines(1000) is None


def flat(text: str) -> str:
    """The text with its line breaks and runs of spaces as one space."""
    return " ".join(text.split())


def write(directory: Path, name: str, figures: dict[str, object]) -> None:
    (directory / name).write_text(json.dumps({**figures,
                                              "machine": MACHINE}))


def test_the_report_of_hand_made_results(tmp_path: Path) -> None:
    write(tmp_path, "hand.json", {"p95_ms_at_100": 50.0,
                                  "p95_ms_at_300": 250.0,
                                  "p95_ms_at_900": -1.0})  # never reached
    out = target_cost_report("300,40,150", fleet=1000, price=2.5,
                             directory=tmp_path, series=[HAND])
    assert (f"{tmp_path}/hand.json: make bench at abc1234, 2026-01-02,"
            " Test CPU, 2 cores.") in flat(out)
    assert "Measured: 100 streams 50 ms, 300 streams 250 ms." in flat(out)
    table = out.split("\n\n")[2].splitlines()
    assert table[:4] == [
        "target  streams       machines   $/hour          from",
        "40 ms   not measured  -          -               100 streams took"
        " 50 ms",
        "150 ms  200           5          $12.50          100 to 300 streams",
        "300 ms  at least 300  at most 4  at most $10.00  no load measured"
        " missed it",
    ]
    assert "No price" not in out


def test_the_report_of_a_search(tmp_path: Path) -> None:
    write(tmp_path, "searched.json", {"p99_ms_at_50": 4.0,
                                      "p99_ms_at_200": 20.0,
                                      "p99_ms_at_500": 900.0,
                                      "capacity_100ms": 300})
    out = target_cost_report("100,500", fleet=1000, directory=tmp_path,
                             series=[SEARCHED])
    assert "the benchmark's search: 300 streams within 100 ms" in flat(out)
    # 300 and 400 streams a machine: 4 and 3 machines for 1,000
    assert ("from 500 ms to 100 ms takes a machine from 400 streams to 300"
            " (25% fewer): 1,000 streams need 4 machines instead of 3"
            " (+33%)") in flat(out)
    assert "No price" in out


def test_the_real_results_cite_their_runs_and_never_extrapolate() -> None:
    out = flat(target_cost_report())
    for name in ("ch06_pipeline.json", "ch04_streaming.json"):
        results = json.loads((REPO_ROOT / "bench" / "results"
                              / name).read_text())
        commit = results["machine"]["git_commit"]
        assert f"bench/results/{name}: make bench at {commit}," in out
    # chapter 6's lightest recorded load took 290.2 ms
    assert "100 ms  not measured" in target_cost_report()
    assert "tighter than every load measured" in out


def test_a_missing_figure_names_the_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    write(tmp_path, "ch06_pipeline.json", {"p95_final_ms_batched_at_200": 1})
    write(tmp_path, "ch04_streaming.json", {})
    assert main(["target-cost", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --results:")
    assert "'capacity_batching_tuned'" in err


def test_the_command_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ch11_slo", "target-cost", "--targets",
         "100,300", "--streams", "10000", "--price-per-hour", "1.5"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        check=False)
    assert done.returncode == 0, done.stderr
    assert "machines: for 10,000 streams" in flat(done.stdout)
    assert "$/hour" in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 79


@pytest.mark.parametrize(("argv", "flag"), [
    (["--targets", "fast"], "--targets"),
    (["--targets", "0,100"], "--targets"),
    (["--targets", "-5"], "--targets"),
    (["--targets", "nan"], "--targets"),
    (["--targets", ""], "--targets"),
    (["--streams", "0"], "--streams"),
    (["--streams", "many"], "--streams"),
    (["--price-per-hour", "-1"], "--price-per-hour"),
    (["--price-per-hour", "inf"], "--price-per-hour"),
    (["--results", "no/such/directory"], "--results"),
])
def test_bad_flags_stop_with_status_2_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str],
) -> None:
    status = exit_status(["target-cost", *argv])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert flag in err


def test_the_readme_holds_the_command_s_output() -> None:
    assert readme_block("target-cost") == (
        f"```text\n{target_cost_report()}```\n")
