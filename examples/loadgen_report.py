"""What a load run shows: live progress, a summary table, a plot, JSON.

Chapter 6, "Handling multiple concurrent streams". While a level runs,
a live panel (rich) counts streams active, rejected and failed, finals,
and the rolling p95 of final latency after the end of speech; it draws
nothing when the output is not a terminal. After the run, one table row
per level, the same as JSON for a benchmark, and a plot of the latency
percentiles against concurrent streams with the 300 ms SLO line: where
the p95 curve crosses it is the service's capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from examples.loadgen_level import SLO_MS, LevelResult, Tally, capacity

REFRESH_S = 0.5


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return "never" if math.isinf(value) else f"{value:.0f}"


def progress_table(tally: Tally) -> Table:
    table = Table(title=f"{tally.streams} streams", show_edge=False)
    for name in ("active", "completed", "rejected", "failed", "finals",
                 "p95 final ms (rolling)"):
        table.add_column(name, justify="right")
    table.add_row(str(tally.active), str(tally.completed),
                  str(tally.rejected), str(tally.failed), str(tally.finals),
                  ms(tally.rolling_p95_ms))
    return table


@contextlib.asynccontextmanager
async def live_progress(tally: Tally, console: Console | None = None,
                        enabled: bool = True) -> AsyncIterator[None]:
    """Redraw `tally` every half second while the body runs: from the
    event loop, so no thread reads the counts as they change. Nothing
    is drawn when disabled or when `console` is not a terminal."""
    console = console or Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield
        return
    with Live(progress_table(tally), console=console,
              auto_refresh=False, transient=True) as live:

        async def redraw() -> None:
            while True:
                await asyncio.sleep(REFRESH_S)
                live.update(progress_table(tally), refresh=True)

        drawing = asyncio.create_task(redraw())
        try:
            yield
        finally:
            drawing.cancel()
            await asyncio.gather(drawing, return_exceptions=True)


def summary_table(results: Sequence[LevelResult],
                  limit_ms: float = SLO_MS) -> Table:
    """One row per level; the caption names the capacity found."""
    table = Table(title="final latency after end of speech", caption=(
        f"capacity: {capacity(results, limit_ms)} streams with p95 final"
        f" <= {limit_ms:g} ms after end of speech, none rejected or"
        " failed"))
    # final latency after the end of speech, and the load generator's
    # CPU time per second of one stream
    columns = ("streams", "admit", "reject", "fail", "utts", "no final",
               "p50 ms", "p95 ms", "p99 ms", "1st p95", "cpu ms/s", "SLO")
    for name in columns:
        table.add_column(name, justify="right")
    for r in results:
        cpu = r.cpu_ms_per_stream_s
        table.add_row(
            str(r.streams), str(r.admitted), str(r.rejected), str(r.failed),
            str(r.utterances), str(r.no_finals), ms(r.final_p50_ms),
            ms(r.final_p95_ms), ms(r.final_p99_ms),
            ms(r.first_result_p95_ms), "-" if cpu is None else f"{cpu:.2f}",
            "met" if r.meets(limit_ms) else "missed")
    return table


def finite(value: float | None) -> float | None:
    """JSON has no infinity: a percentile never reached is null."""
    return None if value is None or math.isinf(value) else value


def summary(results: Sequence[LevelResult],
            limit_ms: float = SLO_MS) -> dict[str, Any]:
    """The table's numbers as JSON-ready data, levels in order."""
    levels = []
    for r in results:
        levels.append({
            "transport": r.transport, "streams": r.streams,
            "duration_s": r.duration_s, "ramp_s": r.ramp_s,
            "admitted": r.admitted, "rejected": r.rejected,
            "failed": r.failed, "drain_timeouts": r.drain_timeouts,
            "utterances": r.utterances, "finals": r.finals,
            "no_finals": r.no_finals,
            "final_p50_ms": finite(r.final_p50_ms),
            "final_p95_ms": finite(r.final_p95_ms),
            "final_p99_ms": finite(r.final_p99_ms),
            "first_result_p95_ms": finite(r.first_result_p95_ms),
            "retry_after_s": r.retry_after_s, "failures": r.failures,
            "loadgen_cpu_s": r.cpu_s, "wall_s": r.wall_s,
            "stream_s": r.stream_s,
            "loadgen_cpu_ms_per_stream_s": r.cpu_ms_per_stream_s,
            "meets_slo": r.meets(limit_ms)})
    return {"slo_ms": limit_ms, "capacity": capacity(results, limit_ms),
            "levels": levels}


def plot(results: Sequence[LevelResult], path: Path,
         limit_ms: float = SLO_MS) -> None:
    """Latency percentiles against concurrent streams, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    ordered = sorted(results, key=lambda r: r.streams)
    streams = [r.streams for r in ordered]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    series = (("final p50", "final_p50_ms", "-"),
              ("final p95", "final_p95_ms", "-"),
              ("final p99", "final_p99_ms", "-"),
              ("first result p95", "first_result_p95_ms", "--"))
    for label, name, style in series:
        # a percentile never reached is drawn off the top, not left out
        values = [getattr(r, name) for r in ordered]
        shown = [math.nan if v is None else min(v, 10 * limit_ms)
                 for v in values]
        axes.plot(streams, shown, style, marker="o", label=label)
    axes.axhline(limit_ms, color="red", linewidth=1,
                 label=f"SLO {limit_ms:g} ms")
    axes.set_xlabel("concurrent streams")
    axes.set_ylabel("ms (final: after end of speech, endpointing"
                    " excluded)")
    axes.set_title("latency against concurrent streams")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
