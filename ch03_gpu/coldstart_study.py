"""The cold-start study: every measurement of the chapter, and figures.

Chapter 3, "Cold start anatomy" and "Cold start mitigation". One call
measures the anatomy of `python -m ch04_streaming` (N cold starts, as
shipped), each mitigation against its absence (templates built at
every start against the load cache, ready before against after the
warm-up decode, imports eager against deferred, a cold process against
a warm pool's spare), and reduces it all to named figures for the
benchmark and the tables.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ch03_gpu.coldstart_lab import (
    ANATOMY,
    BASELINE,
    FAILOVER,
    NO_CACHE,
    NO_WARMUP,
    Phase,
    Run,
    cold_starts,
    lab_workdir,
    load_fixture,
    warm_pool_failovers,
)
from ch03_gpu.import_cost import compare_s, imports_s

# What the matcher's worker process imported at its start before its
# imports were deferred (the service's `__main__` pulled in the whole
# server; the engine libsndfile and the settings, with pydantic), and
# what it imports now. The service's own process needs all it imports
# before its first stream: nothing there was deferred.
WORKER_EAGER = ("ch04_streaming.app", "ch04_streaming.matcher_process")
WORKER_LAZY = ("ch04_streaming.__main__", "ch04_streaming.matcher_process")


@dataclass(frozen=True)
class Study:
    cold: dict[str, list[Run]]  # variant name -> its cold starts
    failovers: list[Run]
    worker_imports_s: tuple[float, float]  # eager, lazy: fresh starts
    worker_import_times_s: tuple[float, float]  # -X importtime

    @property
    def shipped(self) -> list[Run]:
        return self.cold[BASELINE.name]


def median_s(runs: Sequence[Run], measure: Callable[[Run], float]
             ) -> float:
    return statistics.median(measure(r) for r in runs)


def phase_median_s(runs: Sequence[Run], phase: Phase) -> float:
    return statistics.median(r.seconds(phase) for r in runs)


def simulated_s(run: Run) -> float:
    return sum(run.seconds(p) for p in ANATOMY if p.simulated)


def measure(runs: int = 5, fixture: Path | None = None,
            progress: Callable[[str], None] = lambda _: None) -> Study:
    pcm = load_fixture() if fixture is None else load_fixture(fixture)
    with lab_workdir() as workdir:
        cold = asyncio.run(cold_starts(
            (BASELINE, NO_CACHE, NO_WARMUP), runs, pcm, Path(workdir),
            progress))
        progress(f"warm pool: {runs} workers lost and replaced")
        failovers = asyncio.run(
            warm_pool_failovers(runs, (), pcm, Path(workdir)))
    progress("imports, eager and deferred")
    return Study(
        cold=cold, failovers=failovers,
        worker_imports_s=compare_s(WORKER_EAGER, WORKER_LAZY, runs),
        worker_import_times_s=(imports_s(WORKER_EAGER),
                               imports_s(WORKER_LAZY)))


def slug(phase: Phase) -> str:
    return re.sub(r"[^a-z0-9]+", "_", phase.name.lower()).strip("_")


def figures(study: Study) -> dict[str, float]:
    """Named figures in milliseconds (and one percentage), finite."""
    ms = 1000.0
    shipped = study.shipped
    cold = median_s(shipped, lambda r: r.total_s("spawn"))
    warm = median_s(study.failovers, lambda r: r.total_s("lost"))
    lexicon = next(p for p in ANATOMY if p.name == "lexicon load")
    first_stream = next(p for p in ANATOMY if p.name == "first stream")
    no_cache = study.cold[NO_CACHE.name]
    no_warmup = study.cold[NO_WARMUP.name]
    found = {
        "cold_start_first_result_ms": cold * ms,
        "cold_start_without_simulated_device_ms": median_s(
            shipped, lambda r: r.total_s("spawn") - simulated_s(r)) * ms,
        "warm_pool_first_result_ms": warm * ms,
        "warm_pool_percent_of_cold_start": 100 * warm / cold,
        "load_cache_lexicon_saving_ms": (
            median_s(no_cache, lambda r: r.seconds(lexicon))
            - median_s(shipped, lambda r: r.seconds(lexicon))) * ms,
        "load_cache_first_result_saving_ms": (
            median_s(no_cache, lambda r: r.total_s("spawn")) - cold) * ms,
        "lazy_import_worker_saving_ms": (
            study.worker_imports_s[0] - study.worker_imports_s[1]) * ms,
        "lazy_import_worker_importtime_saving_ms": (
            study.worker_import_times_s[0]
            - study.worker_import_times_s[1]) * ms,
        "first_stream_ready_before_warmup_ms": median_s(
            no_warmup, lambda r: r.seconds(first_stream)) * ms,
        "first_stream_ready_after_warmup_ms": median_s(
            shipped, lambda r: r.seconds(first_stream)) * ms,
    }
    for phase in ANATOMY:
        found[f"phase_{slug(phase)}_ms"] = (
            phase_median_s(shipped, phase) * ms)
    for phase in FAILOVER:
        found[f"warm_pool_{slug(phase)}_ms"] = (
            phase_median_s(study.failovers, phase) * ms)
    return {name: round(value, 3) for name, value in found.items()}
