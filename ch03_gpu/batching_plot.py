"""The batching lab's plot: throughput against p50 and p95, by policy.

Chapter 3, "Static vs dynamic vs continuous batching". One panel per
workload and arrival process; each policy's lines are its load sweep
(solid: p95, dotted: p50, in the policy's colour), and the dashed grey
line is the latency bound of the comparison: a policy
further right at the same height serves more at the same tail latency.
Drawn without pyplot, on matplotlib's Agg canvas, so no display or
global state is involved.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ch03_gpu.batching_lab import PolicyResult

COLUMNS = 2
# One colour per policy in every panel.
COLORS = {"batch of one": "#7f8c8d", "static": "#c0392b",
          "dynamic": "#2e86c1", "continuous": "#229954"}


def panel_title(result: PolicyResult) -> str:
    workload = result.workload
    return f"{workload.name} ({workload.profile}), {result.arrivals}"


def plot_throughput_vs_latency(results: list[PolicyResult],
                               path: Path) -> Path:
    titles = list(dict.fromkeys(panel_title(r) for r in results))
    rows = (len(titles) + COLUMNS - 1) // COLUMNS
    figure = Figure(figsize=(6 * COLUMNS, 4 * rows))
    axes = list(figure.subplots(rows, COLUMNS, squeeze=False).flat)
    panels = dict(zip(titles, axes, strict=False))
    for result in results:
        ax = panels[panel_title(result)]
        served = [p.work_per_s for p in result.sweep]
        p95_ms = [p.p95_s * 1000 for p in result.sweep]
        p50_ms = [p.p50_s * 1000 for p in result.sweep]
        name = result.policy.name
        ax.plot(served, p95_ms, marker="o", label=name,
                color=COLORS.get(name))
        ax.plot(served, p50_ms, marker=".", linestyle=":",
                color=COLORS.get(name))
        ax.axhline(result.workload.bound_s * 1000, color="grey",
                   linestyle="--", linewidth=1)
        ax.set_title(panel_title(result))
        ax.set_xlabel(f"throughput ({result.workload.unit} per s)")
        ax.set_ylabel("latency (ms): p95 solid, p50 dotted")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize="small")
    for ax in axes[len(titles):]:
        ax.set_visible(False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
