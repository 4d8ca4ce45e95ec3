"""A day of autoscaling in two panels: replicas, and the p95 they gave.

Chapter 12, "Auto-scaling for inference" (the scaling-signals figure).
The top panel draws the replicas each policy asked for over the day
against the replicas the traffic needed at the target load; the bottom
one the p95 final latency each gave, on a log axis, against the 300 ms
rule. Drawn on matplotlib's Agg canvas, without pyplot, so no display
or global state is involved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ch12_scaling.fleet_sim import DayResult
from ch12_scaling.replica_latency import SLO_MS

SHOWN = {  # policy: colour; the rest would hide these in the noise
    "streams_hysteresis": "#1f4e79",
    "streams_no_hysteresis": "#d68910",
    "gpu_util_hysteresis": "#8e44ad",
    "p95_latency_hysteresis": "#229954",
    "scheduled_streams_hysteresis": "#c0392b",
}


def plot_day(days: Mapping[str, DayResult], needed: Sequence[float],
             path: Path) -> Path:
    """Write the panels to PNG `path`; `needed` is replicas per minute
    at the target load."""
    figure = Figure(figsize=(10, 7), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    hours = np.arange(len(needed)) / 60.0
    top.plot(hours, needed, color="grey", ls="--", lw=1,
             label="needed at the target")
    for name, color in SHOWN.items():
        if name not in days:
            continue
        day = days[name]
        top.step(hours, day.replicas, where="post", color=color, lw=1,
                 label=name)
        bottom.plot(hours, day.p95_ms, color=color, lw=0.8)
    bottom.axhline(SLO_MS, color="black", lw=0.8, ls=":")
    bottom.set_yscale("log")
    top.set_ylabel("replicas")
    bottom.set_ylabel("p95 final (ms)")
    bottom.set_xlabel("hour of the day")
    top.set_xlim(0, hours[-1] if len(hours) else 24)
    top.legend(fontsize="x-small", loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
