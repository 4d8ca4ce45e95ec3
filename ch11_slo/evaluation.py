"""Burn-rate alerts replayed offline over a per-minute history.

Chapter 11, "Monitoring and alerting on SLO burn rate". Given errors and
requests per minute for one SLO period, this computes what Prometheus
would have: the error ratio over every alert window at every minute,
the burn rate of each, which alert tiers fire when, and how much of the
period's error budget is left. Cumulative sums make each window one
subtraction per minute, so a month of minutes takes milliseconds, and a
window without traffic has no ratio rather than a division by zero.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from ch11_slo.burn_rates import DEFAULT_TIERS, AlertTier, burn_rate_table
from ch11_slo.durations import format_duration
from ch11_slo.invalid import InvalidField

Counts = NDArray[np.float64]
MINUTE = 60
DAY = 1_440  # minutes
# The windows Sloth records, in minutes: 5m, 30m, 1h, 2h, 6h, 1d, 3d.
WINDOWS = (5, 30, 60, 120, 360, DAY, 3 * DAY)
DEFAULT_OBJECTIVE = Fraction(999, 1000)


@dataclass(frozen=True)
class MinuteCounts:
    """Errors and requests in each minute of one SLO period."""

    errors: Counts
    total: Counts

    def __post_init__(self) -> None:
        if self.errors.shape != self.total.shape or self.total.ndim != 1:
            raise InvalidField("errors", "needs one count per minute, as"
                               " many as total has")
        if not self.total.size:
            raise InvalidField("total", "has no minutes")
        for name, counts in (("errors", self.errors), ("total", self.total)):
            if not np.isfinite(counts).all() or (counts < 0).any():
                raise InvalidField(name, "counts must be finite and >= 0")
        if (self.errors > self.total).any():
            minute = int(np.argmax(self.errors > self.total))
            raise InvalidField("errors", (
                f"minute {minute} has more errors than requests"))

    @classmethod
    def from_good(cls, good: Counts, total: Counts) -> MinuteCounts:
        return cls(np.asarray(total - good, dtype=np.float64),
                   np.asarray(total, dtype=np.float64))

    @property
    def minutes(self) -> int:
        return len(self.total)


# --8<-- [start:window_error_ratio]
def trailing_sums(counts: Counts, window: int) -> Counts:
    """The sum of the last `window` counts, at every minute: one
    cumulative sum, then one subtraction per minute."""
    cumulative = np.concatenate(([0.0], np.cumsum(counts)))
    start = np.maximum(np.arange(1, len(cumulative)) - window, 0)
    return cumulative[1:] - cumulative[start]


def window_error_ratio(errors: Counts, total: Counts,
                       window: int) -> Counts:
    """The error ratio over the last `window` minutes, at every minute;
    NaN, meaning "no value", where the window saw no traffic."""
    bad = trailing_sums(errors, window)
    seen = trailing_sums(total, window)
    ratio = np.full(len(seen), np.nan)
    # Divide only where there was traffic: no 0/0, and a NaN compares
    # false, so an idle window can never fire an alert.
    np.divide(bad, seen, out=ratio, where=seen > 0)
    return ratio
# --8<-- [end:window_error_ratio]


@dataclass(frozen=True)
class TierFiring:
    """One alert tier, and the minutes at which it fires."""

    name: str  # "page 1h", "ticket 3d"
    factor: float
    long_window: int  # minutes
    short_window: int
    firing: NDArray[np.bool_]


@dataclass(frozen=True)
class Evaluation:
    objective: Fraction
    period: int  # minutes
    ratios: dict[int, Counts]  # window in minutes -> ratio each minute
    tiers: tuple[TierFiring, ...]
    budget_remaining: Counts  # 1.0 untouched, 0.0 spent, < 0 overspent

    def burn_rate(self, window: int) -> Counts:
        """How many times faster than sustainable the budget burns."""
        return self.ratios[window] / float(1 - self.objective)


def minutes_of(seconds: int, field: str) -> int:
    if seconds % MINUTE:
        raise InvalidField(field, (
            f"{format_duration(seconds)} is not whole minutes"))
    return seconds // MINUTE


def budget_remaining(counts: MinuteCounts, objective: Fraction) -> Counts:
    """The share of the period's budget left after each minute. Offline
    the whole period's traffic is known, so the budget is exact: the
    errors the objective allows over all of it."""
    allowed = float(1 - objective) * counts.total.sum()
    if allowed == 0:
        return np.ones(counts.minutes)
    remaining: Counts = 1 - np.cumsum(counts.errors) / allowed
    return remaining


def evaluate(counts: MinuteCounts,
             objective: Fraction = DEFAULT_OBJECTIVE,
             tiers: Sequence[AlertTier] = DEFAULT_TIERS,
             warmup: int = 0) -> Evaluation:
    """Replay the alert tiers over the SLO period that follows the first
    `warmup` minutes of `counts`. Those minutes only fill the windows,
    as a Prometheus that has been running does; without them the first
    minutes see partial windows, as a new series does."""
    period = counts.minutes - warmup
    if not 0 <= warmup < counts.minutes:
        raise InvalidField("warmup", (
            f"{warmup} minutes leaves no period in {counts.minutes}"))
    table = burn_rate_table(objective, period * MINUTE, tiers)
    windows = {w for w in WINDOWS if w < period}
    firing_tiers = []
    for rate in table.rates:
        long = minutes_of(rate.tier.long_window, "long_window")
        short = minutes_of(rate.tier.short_window, "short_window")
        windows |= {long, short} - {period}
        firing_tiers.append((rate, long, short))
    ratios = {
        w: window_error_ratio(counts.errors, counts.total, w)[warmup:]
        for w in sorted(windows)
    }
    in_period = MinuteCounts(counts.errors[warmup:], counts.total[warmup:])
    # The period's own ratio runs from its start: the SLI so far.
    ratios[period] = window_error_ratio(
        in_period.errors, in_period.total, period)
    fired = []
    for rate, long, short in firing_tiers:
        # Compare ratios with the exact threshold: a burn rate over the
        # factor is an error ratio over factor * (1 - objective).
        threshold = float(rate.threshold)
        firing = (ratios[long] > threshold) & (ratios[short] > threshold)
        fired.append(TierFiring(
            name=f"{rate.tier.severity} {rate.tier.long_label}",
            factor=float(rate.factor), long_window=long,
            short_window=short, firing=firing))
    return Evaluation(objective, period, ratios, tuple(fired),
                      budget_remaining(in_period, objective))


def firing_spans(firing: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Each run of firing minutes as (first, last), both inclusive."""
    edges = np.diff(np.concatenate(([0], firing.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def synthetic_month(seed: int = 0, minutes: int = 30 * DAY) -> MinuteCounts:
    """A healthy month: about 500 requests a minute, 0.01% errors."""
    rng = np.random.default_rng(seed)
    total = rng.poisson(500, minutes).astype(np.float64)
    errors = rng.binomial(total.astype(np.int64), 0.0001)
    return MinuteCounts(errors.astype(np.float64), total)


def evaluate_all_windows_ms(repeats: int = 20, seed: int = 0) -> float:
    """Best time, in ms, to evaluate every window and tier over 30 days
    of per-minute data (43,200 points)."""
    counts = synthetic_month(seed)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        evaluate(counts)
        best = min(best, time.perf_counter() - started)
    return best * 1000
