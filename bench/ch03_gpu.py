"""Benchmarks of chapter 3: one section per study, merged by `run`.

The cold-start section starts chapter 4's service again and again
(`ch03_gpu.coldstart_study`): time from spawn to first result, each
phase's median, and what each mitigation saves; its target is a
warm-pool spare's first result within a tenth of a cold start's.
"""

from __future__ import annotations

from ch03_gpu.coldstart_study import figures, measure

COLD_START_RUNS = 5


def cold_start_section() -> dict[str, float]:
    return figures(measure(COLD_START_RUNS))


def run() -> dict[str, float]:
    return {**cold_start_section()}
