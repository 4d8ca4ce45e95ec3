"""A replica's p95 latency from its load, anchored at chapter 6's bench.

Chapter 12, "Auto-scaling for inference". The simulations need the
latency a replica gives at any load, and a benchmark measured two
points of it (`bench/results/ch06_pipeline.json`): the capacity, the
most concurrent streams whose p95 final latency stays within 300 ms
(`capacity_batching_tuned`), and the p95 at a lighter load
(`p95_final_ms_batched_at_200`). Between and beyond them the model is
a queue's: p95 = a + b / (1 - load / saturation), the form of an
M/M/1 queue's response time, where load is streams over the measured
capacity and saturation is the load at which the decode queue grows
without bound. a and b are solved so the curve passes through both
measured points: at the measured capacity the p95 is exactly the 300
ms rule, so a minute violates the SLO exactly when a replica carries
more than its measured capacity. Saturation is an assumption, stated
once below.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CH06_RESULTS = REPO / "bench" / "results" / "ch06_pipeline.json"
CAPACITY_KEY = "capacity_batching_tuned"
NEAR_KEY = "p95_final_ms_batched_at_200"
NEAR_STREAMS = 200  # the load NEAR_KEY was measured at
SLO_MS = 300.0  # chapter 11's rule for the final result, and ch06's
# The bench's search stopped within 10% of the capacity, so the queue
# still drained a little past it; a quarter past it, the model says it
# no longer does.
SATURATION = 1.25
MAX_P95_MS = 30_000.0  # past saturation: streams wait until they quit


class ResultsError(ValueError):
    """The benchmark's results cannot anchor the model."""


@dataclass(frozen=True)
class ReplicaCapacity:
    """What the benchmark measured of one replica."""

    streams: float  # the most within SLO_MS at p95
    near_streams: float  # a lighter load ...
    near_p95_ms: float  # ... and its p95
    source: str

    def __post_init__(self) -> None:
        if not 0 < self.near_streams < self.streams:
            raise ResultsError(
                f"{self.source}: the lighter load ({self.near_streams})"
                f" must be under the capacity ({self.streams})")
        if not 0 < self.near_p95_ms < SLO_MS:
            raise ResultsError(
                f"{self.source}: p95 at {self.near_streams:g} streams is"
                f" {self.near_p95_ms:g} ms, not under {SLO_MS:g} ms")


def _figure(results: dict[str, object], key: str, path: Path) -> float:
    value = results.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ResultsError(f"{path}: no figure {key!r}")
    return float(value)


def load_capacity(path: Path = CH06_RESULTS) -> ReplicaCapacity:
    """Read the capacity and the lighter point from the results."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ResultsError(f"cannot read {path}: {error.strerror}"
                           ) from None
    except json.JSONDecodeError as error:
        raise ResultsError(f"{path} is not JSON: {error}") from None
    if not isinstance(results, dict):
        raise ResultsError(f"{path} is not a JSON object")
    return ReplicaCapacity(
        streams=_figure(results, CAPACITY_KEY, path),
        near_streams=NEAR_STREAMS,
        near_p95_ms=_figure(results, NEAR_KEY, path),
        source=f"{path.name}: {CAPACITY_KEY}, {NEAR_KEY}")


@dataclass(frozen=True)
class LatencyModel:
    """p95 final latency of a replica carrying some streams."""

    capacity: ReplicaCapacity
    saturation: float = SATURATION

    def __post_init__(self) -> None:
        if self.saturation <= 1.0:
            raise ValueError("saturation must be past the capacity (> 1)")

    def _queueing(self, share: float) -> float:
        return 1.0 / (1.0 - share / self.saturation)

    @property
    def _b(self) -> float:
        near = self.capacity.near_streams / self.capacity.streams
        rise = self._queueing(1.0) - self._queueing(near)
        return (SLO_MS - self.capacity.near_p95_ms) / rise

    @property
    def _a(self) -> float:
        return SLO_MS - self._b * self._queueing(1.0)

    def share(self, streams_per_replica: float) -> float:
        """Load as a share of the measured capacity."""
        return streams_per_replica / self.capacity.streams

    def p95_ms(self, streams_per_replica: float) -> float:
        share = self.share(streams_per_replica)
        if share >= self.saturation or not math.isfinite(share):
            return MAX_P95_MS
        return min(MAX_P95_MS, self._a + self._b * self._queueing(share))

    def busy(self, streams_per_replica: float) -> float:
        """The decode server's utilisation, the queue's rho."""
        return self.share(streams_per_replica) / self.saturation
