"""The playout buffer: what it hides, what it costs, and its command."""

from __future__ import annotations

import subprocess
import sys
from itertools import pairwise

import numpy as np
import pytest

from ch11_slo import jitter
from ch11_slo.__main__ import main
from ch11_slo.jitter import (
    AdaptiveDelay,
    FixedDelay,
    Trace,
    arrival_trace,
    best_within,
    fixed_figures,
    gap_lengths,
    jitter_report,
    play_out,
    sweep,
)
from tests.ch11.commands import exit_status, readme_block
from tests.ch11.promtool import REPO_ROOT

CHUNK_MS = 20.0


def hand_trace(arrival_ms: list[float]) -> Trace:
    sent = np.arange(len(arrival_ms), dtype=np.float64) * CHUNK_MS
    return Trace(CHUNK_MS, sent, np.array(arrival_ms, dtype=np.float64))


def steady(chunks: int, network_ms: float = 30.0) -> list[float]:
    return [i * CHUNK_MS + network_ms for i in range(chunks)]


def stall(arrival: list[float], at: int, stall_ms: float) -> list[float]:
    """The link stops as chunk `at` would arrive; every chunk due in the
    next `stall_ms` arrives, bunched, when it comes back."""
    back = arrival[at] + stall_ms
    return [back if arrival[at] <= a < back else a for a in arrival]


def test_a_steady_stream_plays_on_time_with_nothing_added() -> None:
    trace = hand_trace(steady(100))
    figures = fixed_figures(trace, 0)
    assert (figures.late, figures.gaps, figures.longest_gap_ms) == (0, 0, 0)
    assert figures.added_mean_ms == figures.added_p95_ms == 0
    assert figures.play_p95_ms == 30  # the network alone
    adaptive = play_out(trace.arrival_ms, CHUNK_MS, AdaptiveDelay(CHUNK_MS))
    assert not adaptive.late.any()


def test_a_stall_delivers_its_chunks_bunched() -> None:
    arrival = stall(steady(12, network_ms=10), at=5, stall_ms=100)
    assert arrival[:5] == [10, 30, 50, 70, 90]
    assert arrival[5:11] == [210] * 6 and arrival[11] == 230


@pytest.mark.parametrize(("delay_ms", "late_chunks"), [
    (0, [5, 6, 7, 8, 9]),
    (20, [5, 6, 7, 8]),
    (40, [5, 6, 7]),
    (80, [5]),
    (99, [5]),
    (100, []),
    (150, []),
])
def test_only_a_delay_as_long_as_the_stall_hides_it(
    delay_ms: float, late_chunks: list[int],
) -> None:
    """A 100 ms stall: chunk 5 is 100 ms behind its slot, chunk 9 only
    20 ms, so a shorter delay leaves the first of them late, one gap."""
    arrival = np.array(stall(steady(20, network_ms=10), at=5,
                             stall_ms=100))
    playout = play_out(arrival, CHUNK_MS, FixedDelay(delay_ms))
    assert np.flatnonzero(playout.late).tolist() == late_chunks
    assert len(gap_lengths(playout.late)) == (1 if late_chunks else 0)


def test_the_adaptive_delay_learns_from_a_stall() -> None:
    """Two identical stalls 2 s apart: the first finds the delay at 0,
    the second finds it grown, and fewer of its chunks are late."""
    arrival = np.array(stall(stall(steady(200), at=50, stall_ms=100),
                             at=150, stall_ms=100))
    playout = play_out(arrival, CHUNK_MS, AdaptiveDelay(CHUNK_MS))
    late = np.flatnonzero(playout.late)
    assert late[late < 100].tolist() == [50, 51, 52, 53, 54]
    assert 0 < len(late[late >= 100]) < 5


def test_gap_lengths_are_runs_of_late_slots() -> None:
    late = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=np.bool_)
    assert gap_lengths(late).tolist() == [2, 1, 3]
    assert gap_lengths(np.zeros(4, dtype=np.bool_)).tolist() == []


@pytest.mark.parametrize("seed", [0, 5])
def test_more_delay_never_adds_underruns_and_always_adds_latency(
    seed: int,
) -> None:
    trace = arrival_trace(seed, seconds=60)
    delays = range(0, 320, 10)
    plays = [play_out(trace.arrival_ms, CHUNK_MS, FixedDelay(d))
             for d in delays]
    figures = [fixed_figures(trace, d) for d in delays]
    for before, after in pairwise(plays):
        # every chunk on time at a delay is on time at any longer one
        assert not (after.late & ~before.late).any()
    for shorter, longer in pairwise(figures):
        assert longer.late <= shorter.late
        assert longer.added_mean_ms > shorter.added_mean_ms
        assert longer.added_p95_ms >= shorter.added_p95_ms
        assert longer.play_p95_ms > shorter.play_p95_ms
    assert figures[0].late > figures[-1].late  # the trace is jittery


def test_the_same_seed_gives_the_same_figures_and_another_does_not(
) -> None:
    once = sweep(arrival_trace(7, seconds=30))
    again = sweep(arrival_trace(7, seconds=30))
    other = sweep(arrival_trace(8, seconds=30))
    assert once == again
    assert once != other


def test_the_verdict_picks_the_fewest_late_chunks_within_budget() -> None:
    rows = sweep(arrival_trace(3, seconds=60))
    for budget in (100.0, 300.0):
        best = best_within(rows, budget)
        assert best is not None and best.play_p95_ms <= budget
        fits = [r for r in rows if r.play_p95_ms <= budget]
        assert all(best.late <= r.late for r in fits)
        assert any(r.play_p95_ms > budget for r in rows)
    assert best_within(rows, 10.0) is None


def test_the_command_prints_the_table_and_its_verdict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["jitter", "--tier", "interactive-agent"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and all(len(line) <= 79 for line in out.splitlines())
    header = "delay ms  added mean  added p95  play p95  left  late"
    table = out.split(header, 1)[1].split("\nadded: ", 1)[0]
    rows = [line.split()[0] for line in table.splitlines()[1:]]
    assert rows == [*map(str, jitter.FIXED_DELAYS_MS), "adaptive"]
    best = best_within(sweep(arrival_trace(0)), 100.0)
    assert best is not None
    assert f"Within the 100 ms budget, a {best.label} ms playout" in (
        " ".join(out.split()))


def test_the_command_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ch11_slo", "jitter", "--chunk-ms", "40",
         "--seed", "2"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("300 s of 40 ms chunks, seed 2:")
    assert "Within the 300 ms budget" in done.stdout


@pytest.mark.parametrize(("argv", "flag"), [
    (["--chunk-ms", "-20"], "--chunk-ms"),
    (["--chunk-ms", "0"], "--chunk-ms"),
    (["--chunk-ms", "5000"], "--chunk-ms"),
    (["--chunk-ms", "twenty"], "--chunk-ms"),
    (["--seed", "-1"], "--seed"),
    (["--tier", "gold"], "--tier"),
])
def test_bad_flags_stop_with_status_2_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str],
) -> None:
    status = exit_status(["jitter", *argv])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert flag in err


def test_the_readme_holds_the_command_s_table() -> None:
    assert readme_block("jitter").strip("\n") == (
        jitter_report(markdown=True).strip("\n"))
