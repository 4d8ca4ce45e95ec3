"""Benchmark of chapter 11: evaluating every SLO window over a month.

Thirty days of per-minute (errors, total) counts, 43,200 points, through
every window the alert tiers use and the whole period, with cumulative
sums: the offline evaluation behind the scenario and the plots.
"""

from __future__ import annotations

from ch11_slo.evaluation import evaluate_all_windows_ms


def run() -> dict[str, float]:
    return {"eval_30d_minutely_ms": round(evaluate_all_windows_ms(), 3)}
