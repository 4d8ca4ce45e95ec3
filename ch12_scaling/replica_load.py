"""What a replica reports about its load, and how a router reads it.

Chapter 12, "Horizontal scaling: GPU-aware routing". A round-robin or
least-connections balancer sees connections; a speech replica's real
limit is its accelerator: how many streams it decodes within the
300 ms rule, how long decode requests wait for the device now, how
much device memory is left for another stream's state, and whether
the model is loaded and warm at all. Each replica reports those
figures; the router parses them once, here, into a typed `ReplicaLoad`,
and a report that does not parse counts as a replica not to route to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ReplicaLoad:
    taken_at: float  # wall clock: streams admitted before it are counted
    active_streams: int
    capacity_streams: int  # decoded within the 300 ms rule
    max_streams: int  # admitted at most: one more is refused
    queue_wait_p95_s: float  # decode requests' wait for the device
    free_memory_bytes: float
    state_bytes_per_stream: float
    warm: bool  # model loaded and warmed up
    draining: bool  # stopping: no new streams
    region: str = ""
    rtt_ms: float = 0.0  # from the clients' entry point to its region

    def to_stats(self) -> dict[str, float | int | bool | str]:
        return asdict(self)


class LoadReportError(ValueError):
    """A report without the figures routing needs."""


def parse_load(stats: Mapping[str, object]) -> ReplicaLoad:
    """A replica's report, checked; `LoadReportError` says what is
    missing or wrong."""
    values: dict[str, object] = {}
    for spec in fields(ReplicaLoad):
        value = stats.get(spec.name)
        kind = {"int": int, "float": float, "bool": bool,
                "str": str}[str(spec.type)]
        if value is None and spec.name in ("region", "rtt_ms"):
            value = spec.default
        if isinstance(value, bool) and kind is not bool:
            raise LoadReportError(f"{spec.name} must be a number")
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            raise LoadReportError(f"{spec.name} is missing or not {kind}")
        if isinstance(value, float) and not math.isfinite(value):
            raise LoadReportError(f"{spec.name} is not finite")
        values[spec.name] = value
    return ReplicaLoad(**values)  # type: ignore[arg-type]
