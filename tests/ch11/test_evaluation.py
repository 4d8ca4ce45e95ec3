"""Offline burn-rate evaluation: windows, burn rates, alerts, budget."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ch11_slo.burn_rates import AlertTier
from ch11_slo.evaluation import (
    DAY,
    MinuteCounts,
    evaluate,
    evaluate_all_windows_ms,
    firing_spans,
    synthetic_month,
    trailing_sums,
    window_error_ratio,
)
from ch11_slo.invalid import InvalidField
from ch11_slo.plots import plot_evaluation


def counts(errors: list[float], total: list[float]) -> MinuteCounts:
    return MinuteCounts(np.array(errors, dtype=np.float64),
                        np.array(total, dtype=np.float64))


def steady(minutes: int, rate: float = 100.0,
           bad: dict[int, float] | None = None) -> MinuteCounts:
    """`rate` requests a minute, with error ratio bad[minute] or 0."""
    total = np.full(minutes, rate)
    errors = np.zeros(minutes)
    for minute, ratio in (bad or {}).items():
        errors[minute] = ratio * rate
    return MinuteCounts(errors, total)


def test_trailing_sums_cover_the_last_window_minutes() -> None:
    sums = trailing_sums(np.array([1.0, 2.0, 3.0, 4.0]), 2)
    assert sums.tolist() == [1.0, 3.0, 5.0, 7.0]


def test_window_ratio_matches_summing_each_window() -> None:
    rng = np.random.default_rng(7)
    total = rng.poisson(20, 500).astype(np.float64)
    errors = rng.binomial(total.astype(np.int64), 0.1).astype(np.float64)
    for window in (1, 5, 60, 499, 500, 1000):
        expected = [
            errors[max(0, t + 1 - window):t + 1].sum()
            / total[max(0, t + 1 - window):t + 1].sum()
            for t in range(500)
        ]
        ratio = window_error_ratio(errors, total, window)
        assert ratio == pytest.approx(expected, rel=1e-12)


def test_a_window_without_traffic_has_no_ratio() -> None:
    series = counts([0, 1, 0, 0, 0], [10, 10, 0, 0, 0])

    ratio = window_error_ratio(series.errors, series.total, 2)

    assert ratio[:3].tolist() == [0.0, 0.05, 0.1]
    assert np.isnan(ratio[3:]).all()


def test_an_idle_service_fires_nothing() -> None:
    evaluation = evaluate(MinuteCounts(np.zeros(30 * DAY),
                                       np.zeros(30 * DAY)))
    assert not any(tier.firing.any() for tier in evaluation.tiers)
    assert (evaluation.budget_remaining == 1).all()


def test_factors_follow_from_the_period() -> None:
    thirty = evaluate(steady(30 * DAY))
    seven = evaluate(steady(7 * DAY))
    assert [t.name for t in thirty.tiers] == ["page 1h", "page 6h",
                                              "ticket 1d", "ticket 3d"]
    assert [t.factor for t in thirty.tiers] == [14.4, 6.0, 3.0, 1.0]
    assert [t.factor for t in seven.tiers] == pytest.approx([3.36, 1.4,
                                                             0.7, 0.2333333])
    assert [(t.long_window, t.short_window) for t in thirty.tiers] == [
        (60, 5), (360, 30), (1440, 120), (4320, 360)]


def test_every_window_is_evaluated_including_the_period() -> None:
    evaluation = evaluate(steady(30 * DAY))
    assert sorted(evaluation.ratios) == [5, 30, 60, 120, 360, DAY,
                                         3 * DAY, 30 * DAY]
    assert all(len(r) == 30 * DAY for r in evaluation.ratios.values())


def test_burn_rate_is_the_error_ratio_over_the_budget() -> None:
    evaluation = evaluate(steady(30 * DAY, bad={100: 0.3}))
    # 30 errors in the 5 minutes to minute 102: 30 / 500 = 6%, 60x.
    assert evaluation.burn_rate(5)[102] == pytest.approx(60)


def test_a_page_needs_both_windows_burning() -> None:
    # 100% errors for 10 minutes from minute 1000: the 1h window stays
    # over 1.44% for an hour, but the 5m window clears 5 minutes after
    # the last error, and the page with it.
    outage = {m: 1.0 for m in range(1000, 1010)}
    evaluation = evaluate(steady(30 * DAY, bad=outage))
    fast = evaluation.tiers[0]

    assert firing_spans(fast.firing) == [(1000, 1013)]
    assert (evaluation.ratios[60][1014:1060] > 0.0144).all()


def test_budget_remaining_falls_with_each_error() -> None:
    # The budget of 30 days at 100 a minute is 4320 errors; spend half.
    series = steady(30 * DAY, bad={m: 1.0 for m in range(2000, 2000 + 21)})
    series.errors[2021] = 60  # 21 * 100 + 60 = 2160 errors
    remaining = evaluate(series).budget_remaining
    assert remaining[1999] == 1.0
    assert remaining[-1] == pytest.approx(0.5)


def test_a_warmup_fills_windows_but_is_not_in_the_period() -> None:
    # Errors only in the warm-up: they are history, not budget.
    series = steady(4 * DAY, bad={m: 0.01 for m in range(DAY - 60, DAY)})
    evaluation = evaluate(series, warmup=DAY)

    assert evaluation.period == 3 * DAY
    assert evaluation.budget_remaining[-1] == 1.0
    assert evaluation.ratios[60][0] > 0  # the hour before the period
    assert evaluation.ratios[3 * DAY][0] == 0


def test_a_warmup_must_leave_a_period() -> None:
    with pytest.raises(InvalidField) as caught:
        evaluate(steady(DAY), warmup=DAY)
    assert caught.value.field == "warmup"


def test_alert_windows_must_be_whole_minutes() -> None:
    odd = AlertTier("page", Fraction(2, 100), 3_612, 300)  # 1h0m12s
    with pytest.raises(InvalidField) as caught:
        evaluate(steady(30 * DAY), tiers=[odd])
    assert caught.value.field == "long_window"


@pytest.mark.parametrize(("errors", "total", "field"), [
    ([1, 2], [1], "errors"),
    ([], [], "total"),
    ([-1], [1], "errors"),
    ([0], [float("nan")], "total"),
    ([2], [1], "errors"),
])
def test_impossible_counts_are_refused(
        errors: list[float], total: list[float], field: str) -> None:
    with pytest.raises(InvalidField) as caught:
        counts(errors, total)
    assert caught.value.field == field


def test_counts_can_come_as_good_and_total() -> None:
    series = MinuteCounts.from_good(np.array([9.0, 10.0]),
                                    np.array([10.0, 10.0]))
    assert series.errors.tolist() == [1.0, 0.0]


def test_firing_spans_are_inclusive_runs() -> None:
    firing = np.array([True, True, False, False, True, False, True])
    assert firing_spans(firing) == [(0, 1), (4, 4), (6, 6)]
    assert firing_spans(np.zeros(3, dtype=bool)) == []


def test_the_benchmark_times_a_month_of_minutes() -> None:
    # Only that it runs: figures come from `make bench`, not tests.
    assert evaluate_all_windows_ms(repeats=1) > 0
    assert synthetic_month(seed=1).minutes == 30 * DAY


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    evaluation = evaluate(steady(30 * DAY, bad={5000: 1.0}))

    path = plot_evaluation(evaluation, tmp_path / "plots" / "month.png",
                           title="one bad minute", incidents=[(5000, 1)])

    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
