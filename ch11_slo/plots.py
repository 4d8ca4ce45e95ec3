"""Pictures of an offline burn-rate replay: budget, burn, alerts.

Chapter 11, "Monitoring and alerting on SLO burn rate" (the burn-rate
alerting figure with its budget projection). Three panels share a time
axis in days: the error budget left in the period, the burn rate of
each window an alert tier reads against the tiers' thresholds, and the
minutes at which each tier fires. Figures are drawn without pyplot, on
matplotlib's Agg canvas, so no display or global state is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ch11_slo.durations import format_duration
from ch11_slo.evaluation import DAY, MINUTE, Evaluation, firing_spans

# A burn rate of zero has no place on a log axis: draw it at the floor.
BURN_FLOOR = 0.01
SHADE = "#f2d7d5"
COLORS = ("#c0392b", "#8e44ad", "#d68910", "#2e86c1", "#229954")


def days(minutes: int) -> float:
    return minutes / DAY


def shade_incidents(ax: Axes, incidents: Sequence[tuple[int, int]]) -> None:
    for start, length in incidents:
        ax.axvspan(days(start), days(start + length), color=SHADE, lw=0)


def plot_budget(ax: Axes, evaluation: Evaluation) -> None:
    t = np.arange(evaluation.period) / DAY
    ax.plot(t, evaluation.budget_remaining * 100, color="#1f4e79")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("budget left (%)")


def plot_burn_rates(ax: Axes, evaluation: Evaluation) -> None:
    """Each tier's long window, in the colour of its threshold; the
    short windows, which only confirm, are left out to keep it legible.
    """
    t = np.arange(evaluation.period) / DAY
    for tier, color in zip(evaluation.tiers, COLORS, strict=False):
        burn = np.nan_to_num(evaluation.burn_rate(tier.long_window),
                             nan=BURN_FLOOR)
        window = format_duration(tier.long_window * MINUTE)
        ax.plot(t, np.maximum(burn, BURN_FLOOR), lw=1, color=color,
                label=f"{window} window, {tier.name} at {tier.factor:g}x")
        ax.axhline(tier.factor, color=color, ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("burn rate")
    ax.legend(fontsize="x-small", loc="upper right")


def plot_alerts(ax: Axes, evaluation: Evaluation) -> None:
    for row, (tier, color) in enumerate(
            zip(evaluation.tiers, COLORS, strict=False)):
        spans = [(days(first), days(last + 1 - first))
                 for first, last in firing_spans(tier.firing)]
        ax.broken_barh(spans, (row - 0.4, 0.8), color=color)
    ax.set_yticks(range(len(evaluation.tiers)),
                  [tier.name for tier in evaluation.tiers])
    ax.set_ylim(-0.6, len(evaluation.tiers) - 0.4)
    ax.set_xlabel("day of the SLO period")


def plot_evaluation(evaluation: Evaluation, path: Path, title: str = "",
                    incidents: Sequence[tuple[int, int]] = ()) -> Path:
    """Write the three panels to PNG `path`; `incidents` are (start
    minute, length in minutes) spans to shade."""
    figure = Figure(figsize=(10, 7.5), layout="constrained")
    axes = figure.subplots(3, 1, sharex=True,
                           height_ratios=(1, 1.4, 0.7))
    for ax, plot in zip(axes, (plot_budget, plot_burn_rates, plot_alerts),
                        strict=True):
        shade_incidents(ax, incidents)
        plot(ax, evaluation)
    axes[0].set_xlim(0, days(evaluation.period))
    if title:
        figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
