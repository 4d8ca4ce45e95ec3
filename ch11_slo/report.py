"""Every SLI of a run against its tier's targets, as a table.

Chapter 11, "Setting SLO targets". `report RECORDS.jsonl --tier
voice-ai` reads the per-utterance and per-stream records of a load run,
measures every SLI, and prints it beside its target with pass or FAIL;
the exit status is 0 only when every target is met, so the same command
gates a release in CI. Percentiles without a target are shown for
context: a p99 ten times the p95 is worth a look even when p95 passes.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ch11_slo.invalid import InvalidField
from ch11_slo.records import read_records
from ch11_slo.sli import Slis, measure_slis
from ch11_slo.targets import DEFAULT_TARGETS, TierTargets, tier_targets


@dataclass(frozen=True)
class Row:
    sli: str
    measured: str
    target: str = ""
    met: bool | None = None  # None: no target, or nothing measured

    @property
    def verdict(self) -> str:
        return {None: "", True: "pass", False: "FAIL"}[self.met]


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "no data"
    if math.isinf(seconds):
        return "never"  # too many utterances got no result at all
    return f"{seconds * 1000:.0f} ms"


def share(value: float | None) -> str:
    return "no data" if value is None else f"{value:.1%}"


def number(value: float | None) -> str:
    return "no data" if value is None else f"{value:.3f}"


def verdict(value: float | None,
            meets: Callable[[float], bool]) -> bool | None:
    """Whether `value` meets its target; None when nothing was measured
    (an SLI with no data is not a pass)."""
    return None if value is None else meets(value)


def report_rows(slis: Slis, t: TierTargets) -> list[Row]:
    """One row per SLI, with its target and verdict where it has one."""
    rows = []
    for name, latency, limit in (
        ("time to first result", slis.first_result, t.first_result_seconds),
        ("final latency", slis.final_latency, t.final_latency_seconds),
    ):
        p50, p95, p99 = ((latency.p50, latency.p95, latency.p99)
                         if latency else (None, None, None))
        rows += [
            Row(f"{name} p50", ms(p50)),
            Row(f"{name} p95", ms(p95), f"<= {ms(limit)}",
                None if p95 is None else p95 <= limit),
            Row(f"{name} p99", ms(p99)),
        ]
    for name, latency in (
        ("end-to-end (first word to final)", slis.end_to_end),
        ("inter-result gap", slis.inter_result),
        ("time per output word", slis.time_per_word),
    ):
        rows += [Row(f"{name} p50", ms(latency.p50 if latency else None)),
                 Row(f"{name} p95", ms(latency.p95 if latency else None))]
    wer = slis.word_errors.rate if slis.word_errors else None
    words = slis.word_errors.reference_words if slis.word_errors else 0
    rows += [
        Row("real-time factor p95", number(slis.rtf_p95),
            f"< {number(t.rtf_below)}",
            verdict(slis.rtf_p95, lambda v: v < t.rtf_below)),
        Row("real-time factor mean", number(slis.rtf_mean)),
        Row("word error rate (corpus)",
            share(wer) + (f" of {words} words" if words else ""),
            f"<= {share(t.max_wer)}",
            verdict(wer, lambda v: v <= t.max_wer)),
        Row("goodput", share(slis.goodput), f">= {share(t.min_goodput)}",
            verdict(slis.goodput, lambda v: v >= t.min_goodput)),
        Row("connection drop rate", share(slis.drop_rate),
            f"<= {share(t.max_drop_rate)}",
            verdict(slis.drop_rate, lambda v: v <= t.max_drop_rate)),
        Row("reconnection success", share(slis.reconnection),
            f">= {share(t.min_reconnection)}",
            verdict(slis.reconnection, lambda v: v >= t.min_reconnection)),
    ]
    return rows


def format_report(slis: Slis, targets: TierTargets,
                  markdown: bool = False) -> str:
    """The table: aligned text, or Markdown for the manuscript."""
    header = ("SLI", "measured", "target", "result")
    cells = [header] + [(r.sli, r.measured, r.target, r.verdict)
                        for r in report_rows(slis, targets)]
    title = (f"Tier {targets.name} ({targets.description}):"
             f" {slis.utterances} utterances, {slis.streams} streams")
    if markdown:
        lines = [f"| {' | '.join(row)} |" for row in cells]
        lines.insert(1, "|" + "---|" * len(header))
    else:
        widths = [max(len(row[i]) for row in cells)
                  for i in range(len(header))]
        lines = ["  ".join(cell.ljust(width) for cell, width
                           in zip(row, widths, strict=True)).rstrip()
                 for row in cells]
    return "\n".join([title, "", *lines]) + "\n"


def all_met(slis: Slis, targets: TierTargets) -> bool:
    """Every target met; an SLI with no data has not met its target."""
    return all(row.met for row in report_rows(slis, targets)
               if row.target)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch11_slo report",
        description="Measure every SLI of a run against a tier's targets;"
                    " exit 1 if any target is missed.")
    parser.add_argument("records", type=Path,
                        help="JSONL file of utterance and stream records")
    parser.add_argument("--tier", default="voice-ai",
                        help="use-case tier in the targets file"
                             " (default: voice-ai)")
    parser.add_argument("--targets", type=Path, default=DEFAULT_TARGETS,
                        help="targets TOML file (default: the chapter's)")
    parser.add_argument("--markdown", action="store_true",
                        help="print a Markdown table")
    args = parser.parse_args(argv)
    try:
        targets = tier_targets(args.tier, args.targets)
        records = read_records(args.records)
    except (InvalidField, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    slis = measure_slis(records, targets)
    print(format_report(slis, targets, args.markdown), end="")
    return 0 if all_met(slis, targets) else 1
