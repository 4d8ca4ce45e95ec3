"""A fleet of replicas that take a cold start to warm, minute by minute.

Chapter 12, "Cold starts during auto-scaling". The policy decides at
the start of each minute from the minute before; replicas it adds
serve only once their cold start is over, and cost from the moment
they are asked for (the GPU is rented while the image is pulled and
the weights load). A replica removed is a starting one if any is left,
else the newest: never a warm one while a cold one could go instead.
Each minute's p95 comes from the streams per warm replica through the
latency model anchored at chapter 6's benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from ch12_scaling.autoscaling import Reading, ScalingPolicy
from ch12_scaling.replica_latency import MAX_P95_MS, SLO_MS, LatencyModel
from ch12_scaling.scaling_actions import Action, count_flaps
from ch12_scaling.scaling_signals import Minute, Signal


@dataclass
class SimClock:
    """The policies' clock: seconds since midnight, set by the sim."""

    now_s: float = 0.0

    def __call__(self) -> float:
        return self.now_s


@dataclass
class Fleet:
    """Replicas, each with the minute it is (or was) warm from."""

    cold_start_min: float
    ready_at: list[float] = field(default_factory=list)

    @classmethod
    def warm(cls, replicas: int, cold_start_min: float) -> Fleet:
        return cls(cold_start_min, [-math.inf] * replicas)

    @property
    def size(self) -> int:
        return len(self.ready_at)

    def ready(self, minute: float) -> int:
        return sum(1 for at in self.ready_at if at <= minute)

    def resize(self, desired: int, minute: float) -> int:
        """Add cold replicas or remove the coldest; the change made."""
        change = desired - self.size
        if change > 0:
            self.ready_at += [minute + self.cold_start_min] * change
        elif change < 0:
            self.ready_at = sorted(self.ready_at)[:desired]
        return change


@dataclass
class DayResult:
    """One policy's day: per minute, and the scale actions."""

    replicas: list[int] = field(default_factory=list)  # asked for
    ready: list[int] = field(default_factory=list)
    p95_ms: list[float] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    streams_moved: int = 0  # streams on warm replicas removed

    @property
    def violation_minutes(self) -> int:
        return sum(1 for p95 in self.p95_ms if p95 > SLO_MS)

    @property
    def replica_hours(self) -> float:
        return sum(self.replicas) / 60.0

    @property
    def flaps(self) -> int:
        return count_flaps(self.actions)


def replay(streams: Iterable[int], policy: ScalingPolicy, signal: Signal,
           model: LatencyModel, fleet: Fleet, clock: SimClock) -> DayResult:
    """The day through one policy reading one signal."""
    day, minutes = DayResult(), list[Minute]()
    for minute, count in enumerate(streams):
        if minutes:
            clock.now_s = minute * 60.0
            reading = Reading(signal.read(minutes), minutes[-1].ready,
                              fleet.size)
            warm = fleet.ready(minute)
            change = fleet.resize(policy.desired(reading), minute)
            if change:
                day.actions.append(Action(minute, change))
            # Streams on a warm replica removed must move: drained or
            # cut, each one a reconnect a user may notice.
            day.streams_moved += round(
                (warm - fleet.ready(minute)) * minutes[-1].per_ready)
        ready = fleet.ready(minute)
        p95 = model.p95_ms(count / ready) if ready else MAX_P95_MS
        minutes.append(Minute(int(count), ready, p95))
        day.replicas.append(fleet.size)
        day.ready.append(ready)
        day.p95_ms.append(p95)
    return day
