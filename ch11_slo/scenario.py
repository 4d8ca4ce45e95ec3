"""A month of synthetic traffic, and which burn-rate alerts fire when.

Chapter 11, "Monitoring and alerting on SLO burn rate". The scenario
replays 30 days of per-minute requests with a seed: diurnal traffic at
a tiny error ratio, a one-hour outage at 50% errors on day 10, and a
slow degradation at 0.5% errors for two days from day 20. The fast page
fires within minutes of the outage; the degradation burns the budget
five times too fast, below both page tiers, so it opens a ticket and
wakes nobody; the healthy days fire nothing. A table gives the first
and last minute each tier fires in each stretch, and a plot shows it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ch11_slo.durations import format_duration
from ch11_slo.evaluation import (
    DAY,
    MINUTE,
    Evaluation,
    MinuteCounts,
    evaluate,
)
from ch11_slo.plots import plot_evaluation

PERIOD_DAYS = 30
# Three days of history before the period fill the longest window.
WARMUP = 3 * DAY
MEAN_RATE = 1_000  # utterances a minute, averaged over a day
DIURNAL_SWING = 0.6  # the busiest minute sees 1.6x the mean, 0.4x at 00:00
BASELINE_ERROR_RATIO = 0.0001
DEFAULT_PLOT = Path("build/ch11/scenario.png")


@dataclass(frozen=True)
class Incident:
    name: str
    start: int  # minute of the period
    minutes: int
    error_ratio: float

    def describe(self) -> str:
        length = format_duration(self.minutes * MINUTE)
        return (f"{self.name}: {self.error_ratio:.1%} errors for {length}"
                f" from {clock(self.start)}")


INCIDENTS = (
    Incident("outage", 10 * DAY + 4 * 60, 60, 0.5),
    Incident("slow degradation", 20 * DAY, 2 * DAY, 0.005),
)


def clock(minute: int) -> str:
    """A minute of the period as people read it: day 10 04:02."""
    day, rest = divmod(minute, DAY)
    return f"day {day} {rest // 60:02d}:{rest % 60:02d}"


def diurnal_rate(minutes: NDArray[np.int64]) -> NDArray[np.float64]:
    """Expected utterances a minute: quietest at midnight, busiest at
    noon."""
    phase = 2 * np.pi * (minutes / DAY - 0.25)
    rate: NDArray[np.float64] = MEAN_RATE * (1 + DIURNAL_SWING
                                             * np.sin(phase))
    return rate


def synthesize(seed: int, incidents: Sequence[Incident] = INCIDENTS,
               days: int = PERIOD_DAYS) -> MinuteCounts:
    """`WARMUP` healthy minutes, then `days` of the period."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(-WARMUP, days * DAY)
    total = rng.poisson(diurnal_rate(minutes))
    ratio = np.full(len(minutes), BASELINE_ERROR_RATIO)
    for incident in incidents:
        start = WARMUP + incident.start
        ratio[start:start + incident.minutes] = incident.error_ratio
    errors = rng.binomial(total, ratio)
    return MinuteCounts(errors.astype(np.float64),
                        total.astype(np.float64))


@dataclass(frozen=True)
class Fires:
    """When one tier fired within one stretch of the period."""

    stretch: str
    begins: int  # the stretch's first minute
    tier: str
    first: int | None
    last: int | None
    minutes: int  # minutes firing


def stretches(incidents: Sequence[Incident],
              period: int) -> list[tuple[str, int, int]]:
    """(name, first minute, end) of each stretch: the healthy days before
    the first incident, then each incident until the next one begins,
    so an alert that fires on after an incident is counted with it."""
    ordered = sorted(incidents, key=lambda i: i.start)
    starts = [0] + [i.start for i in ordered] + [period]
    names = ["healthy baseline"] + [i.name for i in ordered]
    return [(name, starts[k], starts[k + 1])
            for k, name in enumerate(names)]


def fire_table(evaluation: Evaluation,
               incidents: Sequence[Incident]) -> list[Fires]:
    rows = []
    for name, begin, end in stretches(incidents, evaluation.period):
        for tier in evaluation.tiers:
            fired = np.flatnonzero(tier.firing[begin:end]) + begin
            rows.append(Fires(
                name, begin, tier.name,
                int(fired[0]) if fired.size else None,
                int(fired[-1]) if fired.size else None,
                int(fired.size)))
    return rows


def when(minute: int | None, begins: int) -> str:
    if minute is None:
        return "-"
    after = minute - begins
    offset = format_duration(after * MINUTE) if after else "0m"
    return f"{clock(minute)} (+{offset})"


def format_fire_table(rows: Sequence[Fires]) -> str:
    header = ("stretch", "tier", "first fire", "last fire", "minutes")
    cells = [header] + [
        (r.stretch, r.tier, when(r.first, r.begins),
         when(r.last, r.begins), str(r.minutes))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        .rstrip() for row in cells) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch11_slo scenario",
        description="Replay a synthetic month against the burn-rate"
                    " alert tiers: which fire when.")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the synthetic traffic (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_PLOT,
                        help=f"PNG to write (default {DEFAULT_PLOT})")
    args = parser.parse_args(argv)
    evaluation = evaluate(synthesize(args.seed), warmup=WARMUP)
    print(f"SLO 99.9% over {PERIOD_DAYS} days, seed {args.seed}, about"
          f" {MEAN_RATE} utterances a minute at"
          f" {BASELINE_ERROR_RATIO:.2%} errors")
    for incident in INCIDENTS:
        print(f"  {incident.describe()}")
    print()
    print(format_fire_table(fire_table(evaluation, INCIDENTS)), end="")
    left = evaluation.budget_remaining[-1]
    print(f"\nerror budget left at the end of the period: {left:.1%}")
    plot_evaluation(
        evaluation, args.out,
        title="Burn-rate alerts over a synthetic month (SLO 99.9%)",
        incidents=[(i.start, i.minutes) for i in INCIDENTS])
    print(f"plot: {args.out}")
    return 0
