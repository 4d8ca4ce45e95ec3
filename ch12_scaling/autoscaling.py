"""The stream-aware autoscaling policy: hysteresis, bounds, cold starts.

Chapter 12, "Auto-scaling for inference". The recommended signal is
in-flight streams (audio being decoded) per ready replica, against the
streams one replica was measured to carry within the 300 ms p95 rule
(chapter 6). It leads: a stream counts the moment it connects, before
it has queued anything. It is proportional: twice the streams needs
twice the replicas, so it says how many to add, not only that more are
needed. GPU utilisation saturates near 100% and cannot tell busy from
drowning; queue depth and queue-wait p95 stay near zero until the
queue is already growing, and latency lags further still (the sim
shows each). Queue wait still has a job: the Serve adapter counts a
replica whose decode queue waits too long as full, whatever its stream
count, because its streams cost more than the measured ones.
The policy is pure and takes a clock, so a test can step time. It adds
replicas fast, after a short window above an upper threshold, sizing
the fleet for the target in one step; it removes them slowly, one at a
time, each after a long window under a lower threshold, and only while
the fleet one smaller would still sit at the target. Replicas still
starting count as capacity to come: while they warm up, the policy
does not ask for them again. Bounds clamp every answer. For traffic a
forecast knows, a schedule of hourly minimums sits under the policy,
raised a cold start early; the policy handles what no forecast knows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Bounds:
    """The fewest and most replicas the fleet may have."""

    min_replicas: int
    max_replicas: int

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas, got"
                             f" {self.min_replicas}, {self.max_replicas}")
        if self.max_replicas < 1:
            raise ValueError("max_replicas must be at least 1")

    def clamp(self, replicas: int, floor: int = 0) -> int:
        """Within the bounds; `floor` raises the minimum (a schedule)."""
        lowest = max(self.min_replicas, floor)
        return min(self.max_replicas, max(lowest, replicas))


@dataclass(frozen=True)
class Hysteresis:
    """Thresholds of the signal per replica, and how long each holds."""

    target: float  # scaling up sizes the fleet to this
    up_at: float  # above this (on the fleet to be) for up_window_s
    down_at: float  # under this for down_window_s: one replica less
    up_window_s: float = 60.0
    down_window_s: float = 600.0

    def __post_init__(self) -> None:
        if not 0 < self.down_at <= self.target <= self.up_at:
            raise ValueError("need 0 < down_at <= target <= up_at, got"
                             f" {self.down_at}, {self.target}, {self.up_at}")
        if self.up_window_s < 0 or self.down_window_s < 0:
            raise ValueError("windows cannot be negative")


@dataclass(frozen=True)
class Reading:
    """The signal, averaged over ready replicas, and the fleet."""

    per_ready: float  # e.g. streams per warm replica
    ready: int  # warm replicas, serving
    current: int  # replicas asked for: ready plus still starting

    @property
    def load(self) -> float:
        """The whole fleet's load, in the signal's unit."""
        return self.per_ready * self.ready

    @property
    def starting(self) -> int:
        return max(0, self.current - self.ready)


@dataclass
class Windows:
    """Since when each direction's condition has held (a clock time)."""

    up_since: float | None = None
    down_since: float | None = None

    def up_for(self, now: float) -> float:
        """The up condition holds now: for how long, in all."""
        self.down_since = None
        self.up_since = now if self.up_since is None else self.up_since
        return now - self.up_since

    def down_for(self, now: float) -> float:
        """The down condition holds now: for how long, in all."""
        self.up_since = None
        self.down_since = (now if self.down_since is None
                           else self.down_since)
        return now - self.down_since

    def reset(self) -> None:
        self.up_since = self.down_since = None

    def as_state(self, prefix: str) -> dict[str, float | None]:
        return {f"{prefix}up_since": self.up_since,
                f"{prefix}down_since": self.down_since}

    @classmethod
    def from_state(cls, state: Mapping[str, object],
                   prefix: str) -> Windows:
        def since(key: str) -> float | None:
            value = state.get(prefix + key)
            if isinstance(value, bool):
                return None
            return float(value) if isinstance(value, int | float) else None
        return cls(since("up_since"), since("down_since"))


class ScalingPolicy(Protocol):
    def desired(self, reading: Reading) -> int:
        """Replicas the fleet should have, given the last reading."""


# --8<-- [start:autoscaling_policy]
@dataclass
class HysteresisPolicy:
    """Fast up, slow down, starting replicas counted as coming."""

    thresholds: Hysteresis
    bounds: Bounds
    clock: Callable[[], float]
    windows: Windows = field(default_factory=Windows)

    def desired(self, reading: Reading, floor: int = 0) -> int:
        now, t, w = self.clock(), self.thresholds, self.windows
        # Per replica once the starting ones are warm: a start already
        # asked for is not asked for again.
        per_planned = reading.load / max(1, reading.current)
        one_less = reading.load / max(1, reading.current - 1)
        want = reading.current
        if per_planned > t.up_at:
            if w.up_for(now) >= t.up_window_s:  # short: act fast
                want = math.ceil(reading.load / t.target)
                w.reset()
        elif (per_planned < t.down_at and one_less <= t.target
              and reading.starting == 0):
            if w.down_for(now) >= t.down_window_s:  # long: be sure
                want = reading.current - 1
                w.reset()
        else:
            w.reset()
        return self.bounds.clamp(want, floor)
# --8<-- [end:autoscaling_policy]


@dataclass
class ProportionalPolicy:
    """No hysteresis: the fleet sized to the target at every reading,
    as an HPA or Serve's default policy does with no delays."""

    target: float
    bounds: Bounds

    def desired(self, reading: Reading) -> int:
        return self.bounds.clamp(math.ceil(reading.load / self.target))


@dataclass(frozen=True)
class HourlyFloor:
    """A minimum per hour of the day, applied `lead_s` early so the
    replicas are warm when the hour starts."""

    replicas: tuple[int, ...]  # one per hour, from midnight
    lead_s: float = 0.0

    def __post_init__(self) -> None:
        if len(self.replicas) != 24 or min(self.replicas) < 0:
            raise ValueError("need 24 hourly minimums, none negative")

    def at(self, now_s: float) -> int:
        hour = int((now_s + self.lead_s) // 3600) % 24
        return self.replicas[hour]


def floor_from_forecast(per_minute: Sequence[float],
                        per_replica: float) -> tuple[int, ...]:
    """Each hour's minimum: its busiest expected minute, at the target
    load per replica. The forecast is one value per minute of a day."""
    if len(per_minute) != 24 * 60:
        raise ValueError("the forecast needs one value per minute of a day")
    if per_replica <= 0:
        raise ValueError("per_replica must be positive")
    return tuple(
        math.ceil(max(per_minute[hour * 60:(hour + 1) * 60]) / per_replica)
        for hour in range(24))


@dataclass
class ScheduledPolicy:
    """The schedule's floor for predictable traffic, the reactive
    policy on top for what no forecast knows (bursts)."""

    floor: HourlyFloor
    reactive: HysteresisPolicy

    def desired(self, reading: Reading) -> int:
        now = self.reactive.clock()
        want = self.reactive.desired(reading, floor=self.floor.at(now))
        # A step down that the floor, rising within the down window,
        # would undo is a flap: keep the replica instead.
        ahead = self.floor.at(now + self.reactive.thresholds.down_window_s)
        return max(want, min(reading.current, ahead))
