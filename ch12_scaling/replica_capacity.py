"""One replica's capacity: measured on one accelerator, moved to others.

Chapter 12, "Capacity planning for inference workloads". Chapter 6's
benchmark (`bench/results/ch06_pipeline.json`) found the most streams
one replica serves with p95 final latency within 300 ms, the full
model for every stream, on the cost profile chapter 3 measured on its
reference accelerator. For another p95 target, chapter 11's method
reads the same results: linear between a measured load within the
target and the next beyond it, never past the loads measured: a
looser target, or one no measured load missed, plans on the most
streams known within it (a floor); a target tighter than every load
measured is refused, since only a benchmark at fewer streams can say
what it allows. Another accelerator is scaled from the reference as
chapter 3 scales it: compute by tensor-core throughput, launches
unchanged, so streams within a budget grow with throughput; and no
more streams than its memory holds. That scaling moves the device's
work only: where the host bounds a replica (the benchmark's own
machine did), measure on the accelerator itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ch03_gpu.profiles import PROFILE
from ch03_gpu.sizing import Catalogue, Offer, memory_streams, scaled_cost
from ch11_slo.invalid import InvalidField
from ch11_slo.target_cost import (
    RESULTS,
    SERIES,
    capacity,
    load_results,
    measurements,
    provenance,
)

# `capacity_batching_tuned` ran chapter 3's tuned profile, in bf16.
COST_PROFILE = "tuned"
PRECISION = "bf16"
CH06 = next(s for s in SERIES if s.results == "ch06_pipeline.json")


class MeasurementError(ValueError):
    """The results cannot answer; `about` says what is missing: the
    `results` (a file or a figure) or a load within the `target`."""

    def __init__(self, about: str, problem: str) -> None:
        super().__init__(f"{about}: {problem}")
        self.about = about
        self.problem = problem


@dataclass(frozen=True)
class MeasuredCapacity:
    """Streams one replica serves on the reference accelerator."""

    streams: int
    target_ms: float
    at_least: bool  # the heaviest load measured met the target
    method: str  # how the figure follows from the loads measured
    provenance: str  # results file, commit, date and machine


def measured_capacity(target_ms: float,
                      directory: Path = RESULTS) -> MeasuredCapacity:
    """The most streams a replica held within `target_ms` of p95."""
    try:
        results = load_results(directory, CH06.results)
        found = capacity(measurements(CH06, results), target_ms)
    except InvalidField as error:
        raise MeasurementError("results", error.problem) from None
    if found.streams is None:
        raise MeasurementError(
            "target", f"p95 {target_ms:g} ms is tighter than every load"
            f" measured ({found.source}); only a benchmark at fewer"
            " streams can say what it allows")
    method = ("the most measured within it; none measured missed it"
              if found.at_least else found.source)
    return MeasuredCapacity(found.streams, target_ms, found.at_least,
                            method,
                            provenance(directory / CH06.results, results))


def streams_per_replica(measured: int, catalogue: Catalogue,
                        offer: Offer) -> int:
    """`measured` streams on the reference, moved to `offer`.

    In chapter 3's model a device holds streams within a budget in
    inverse proportion to its cost per audio second, since launches
    cost the same on each: the ratio of the two scaled costs is the
    ratio of the streams.
    """
    here = scaled_cost(PROFILE, COST_PROFILE, catalogue, offer, PRECISION)
    there = scaled_cost(PROFILE, COST_PROFILE, catalogue,
                        catalogue.offer(catalogue.reference), PRECISION)
    by_compute = measured * there.per_audio_s_ms / here.per_audio_s_ms
    by_memory = memory_streams(PROFILE, offer, PRECISION)
    return math.floor(min(by_compute, by_memory))


def why_no_stream(offer: Offer) -> str:
    """Why `offer` holds not one stream: memory, else throughput."""
    if memory_streams(PROFILE, offer, PRECISION) < 1:
        return (f"its {offer.memory_gib:g} GiB hold no stream's state"
                " beside the weights")
    return "scaled by throughput, it holds under one stream in time"
