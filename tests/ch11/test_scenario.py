"""The synthetic month: which burn-rate alerts fire for which incident."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ch11_slo.evaluation import DAY, Evaluation, evaluate
from ch11_slo.scenario import (
    INCIDENTS,
    PERIOD_DAYS,
    WARMUP,
    Fires,
    fire_table,
    main,
    synthesize,
)

OUTAGE, DEGRADATION = INCIDENTS


@pytest.fixture(scope="module")
def month() -> Evaluation:
    return evaluate(synthesize(seed=0), warmup=WARMUP)


@pytest.fixture(scope="module")
def fires(month: Evaluation) -> dict[tuple[str, str], Fires]:
    return {(r.stretch, r.tier): r for r in fire_table(month, INCIDENTS)}


def test_the_scenario_is_the_chapters_story() -> None:
    assert (OUTAGE.start // DAY, OUTAGE.minutes, OUTAGE.error_ratio) == (
        10, 60, 0.5)
    assert (DEGRADATION.start // DAY, DEGRADATION.minutes,
            DEGRADATION.error_ratio) == (20, 2 * DAY, 0.005)


def test_the_same_seed_gives_the_same_month() -> None:
    first, again, other = synthesize(3), synthesize(3), synthesize(4)
    assert np.array_equal(first.errors, again.errors)
    assert not np.array_equal(first.total, other.total)
    assert first.minutes == WARMUP + PERIOD_DAYS * DAY


def test_the_outage_pages_within_minutes(
        fires: dict[tuple[str, str], Fires]) -> None:
    fast = fires["outage", "page 1h"]
    assert fast.first is not None and fast.last is not None
    # 50% errors is a 500x burn: the 1h window passes 14.4x in 2 minutes.
    assert fast.first - OUTAGE.start <= 2
    # It stops within the short window's 5 minutes of recovery.
    assert fast.last < OUTAGE.start + OUTAGE.minutes + 5
    assert fires["outage", "page 6h"].minutes > 0


def test_the_slow_degradation_opens_a_ticket_but_pages_nobody(
        month: Evaluation, fires: dict[tuple[str, str], Fires]) -> None:
    ticket = fires["slow degradation", "ticket 3d"]
    assert ticket.first is not None
    # 0.5% is a 5x burn: the 3d window crosses 1x after about 13 hours.
    assert 10 * 60 < ticket.first - DEGRADATION.start < DAY
    assert fires["slow degradation", "page 1h"].minutes == 0
    assert fires["slow degradation", "page 6h"].minutes == 0
    # Not by luck: the 6h window stays clear of the 6x page threshold.
    during = slice(DEGRADATION.start, DEGRADATION.start + 2 * DAY + 360)
    assert month.burn_rate(360)[during].max() < 5.75


def test_the_healthy_baseline_fires_nothing(
        fires: dict[tuple[str, str], Fires]) -> None:
    assert [r.minutes for k, r in fires.items()
            if k[0] == "healthy baseline"] == [0, 0, 0, 0]


def test_a_month_without_incidents_fires_nothing() -> None:
    evaluation = evaluate(synthesize(seed=1, incidents=()), warmup=WARMUP)
    assert [int(t.firing.sum()) for t in evaluation.tiers] == [0, 0, 0, 0]
    assert evaluation.budget_remaining[-1] > 0.85


def test_the_incidents_spend_most_of_the_budget(month: Evaluation) -> None:
    before, after = OUTAGE.start - 1, OUTAGE.start + OUTAGE.minutes
    spent_by_outage = (month.budget_remaining[before]
                       - month.budget_remaining[after])
    assert 0.4 < spent_by_outage < 0.7
    assert 0 < month.budget_remaining[-1] < 0.1


def test_main_prints_the_fire_table_and_writes_the_plot(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scenario.png"

    status = main(["--seed", "0", "--out", str(out)])

    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert any(line.startswith("outage") and "page 1h" in line
               and "day 10 04:01 (+1m)" in line for line in lines)
    assert any(line.startswith("slow degradation") and "ticket 3d" in line
               for line in lines)
    assert lines[-1] == f"plot: {out}"
