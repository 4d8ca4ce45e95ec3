"""The cold-start study in print: tables and a timeline.

Chapter 3, "Cold start anatomy" and "Cold start mitigation". The
anatomy table gives each phase's median and spread over the runs, the
mitigation table each mitigation measured without and with it, the GPU
table the published figure of each step beside our phase that does its
job; the timeline draws a median cold start above a warm-pool spare
taking over, on one time axis.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from ch03_gpu.coldstart_lab import (
    ANATOMY,
    FAILOVER,
    NO_CACHE,
    NO_WARMUP,
    Phase,
    Run,
)
from ch03_gpu.coldstart_study import (
    Study,
    figures,
    median_s,
    phase_median_s,
    simulated_s,
)
from ch03_gpu.gpu_cold_start import GPU_STEPS

DEFAULT_TIMELINE = Path("build/ch03/cold_start_timeline.png")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; numbers align right."""
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if c[:1].isdigit() or c[:1] in "+-" else c.ljust(w)
            for c, w in zip(row, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def anatomy_table(runs: Sequence[Run]) -> str:
    total = median_s(runs, lambda r: r.total_s("spawn"))
    rows = []
    for phase in ANATOMY:
        spent = [r.seconds(phase) for r in runs]
        median = phase_median_s(runs, phase)
        rows.append([phase.name + (" (simulated)" if phase.simulated
                                   else ""),
                     ms(median), ms(min(spent)), ms(max(spent)),
                     f"{median / total:.0%}"])
    rows.append(["spawn -> first result", ms(total),
                 ms(min(r.total_s("spawn") for r in runs)),
                 ms(max(r.total_s("spawn") for r in runs)), "100%"])
    rows.append(["  of which measured work",
                 ms(median_s(runs, lambda r: r.total_s("spawn")
                             - simulated_s(r))), "", "", ""])
    return table(["phase", "median ms", "min", "max", "share"], rows)


def mitigation_table(study: Study) -> str:
    found = figures(study)
    shipped = study.shipped
    no_cache = study.cold[NO_CACHE.name]
    no_warmup = study.cold[NO_WARMUP.name]
    lexicon = next(p for p in ANATOMY if p.name == "lexicon load")
    first = next(p for p in ANATOMY if p.name == "first stream")
    to_ready = next(p for p in ANATOMY if p.name == "readiness seen")

    def until_ready(r: Run) -> float:
        return r.at[to_ready.ends] - r.at["spawn"]

    worker, importtime = study.worker_imports_s, study.worker_import_times_s
    cold = found["cold_start_first_result_ms"] / 1000
    warm = found["warm_pool_first_result_ms"] / 1000
    measured: list[tuple[str, str, float, float]] = [
        ("load cache (mmap'd templates)", "lexicon load",
         median_s(no_cache, lambda r: r.seconds(lexicon)),
         median_s(shipped, lambda r: r.seconds(lexicon))),
        ("", "spawn -> first result",
         median_s(no_cache, lambda r: r.total_s("spawn")), cold),
        ("lazy imports", "matcher process: its start", *worker),
        ("", "matcher process: -X importtime", *importtime),
        ("ready only after a warm-up", "first stream (ready -> result)",
         median_s(no_warmup, lambda r: r.seconds(first)),
         median_s(shipped, lambda r: r.seconds(first))),
        ("", "spawn -> ready seen", median_s(no_warmup, until_ready),
         median_s(shipped, until_ready)),
        ("warm pool (forked spare)", "worker lost -> first result",
         cold, warm),
    ]
    rows = [[name, on, ms(without), ms(with_it),
             f"{(with_it - without) * 1000:+,.0f}"]
            for name, on, without, with_it in measured]
    return table(["mitigation", "measured on", "without ms", "with ms",
                  "change ms"], rows) + (
        f"\nA warm-pool spare gives its first result in {warm / cold:.1%}"
        " of the time a cold start takes.")


def gpu_table(study: Study) -> str:
    """Each published step, our phases that do its job, and ours."""
    ours_s = {p.name: phase_median_s(study.shipped, p) for p in ANATOMY}
    ours_s["warm-pool takeover"] = median_s(
        study.failovers, lambda r: r.total_s("lost"))
    blocks = []
    for step in GPU_STEPS:
        here = (f"{', '.join(step.ours)}:"
                f" {ms(sum(ours_s[n] for n in step.ours))} ms")
        if step.note:
            here += f" ({step.note})"
        blocks += [step.step,
                   *_indented(f"here: {here}"),
                   *_indented(f"on a GPU: {step.figure}"),
                   *_indented(f"source: {step.source}")]
    return "\n".join(blocks)


def _indented(text: str) -> list[str]:
    return textwrap.wrap(text, width=79, initial_indent="  ",
                         subsequent_indent="    ")


def draw_timeline(study: Study, path: Path) -> Path:
    """Median phases of a cold start and of a warm-pool takeover."""
    # Imported here: matplotlib takes a while to load, and only the
    # timeline needs it.
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows = [("cold start\npython -m ch04_streaming", study.shipped,
             ANATOMY),
            ("warm pool\nspare takes over", study.failovers, FAILOVER)]
    colours = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(11, 3.2))
    legend: dict[str, Rectangle] = {}
    for y, (label, runs, phases) in enumerate(reversed(rows)):
        start = 0.0
        for i, phase in enumerate(phases):
            width = phase_median_s(runs, phase)
            colour = colours((i * 2 + y * 7) % 20)
            bar = ax.barh(y, width, left=start, color=colour,
                          hatch="//" if phase.simulated else None,
                          edgecolor="white")
            legend[_legend_label(phase, label)] = bar.patches[0]
            start += width
        ax.text(start, y, f"  {start * 1000:,.0f} ms", va="center")
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)])
    ax.set_xlabel("seconds from spawn (cold) or from the worker's loss"
                  " (warm pool); hatched: simulated device")
    ax.set_title("Cold start anatomy: medians of measured runs")
    ax.legend(list(legend.values()), list(legend.keys()), fontsize=7,
              ncol=4,
              loc="upper center", bbox_to_anchor=(0.5, -0.3))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _legend_label(phase: Phase, row: str) -> str:
    owner = "warm pool: " if row.startswith("warm") else ""
    return owner + phase.name
