"""Graceful degradation: trade quality for latency, with hysteresis.

Chapter 6, "Graceful degradation under load". The signal is what a
stream feels first when the accelerator falls behind: how long decode
requests wait in the scheduler's queue (the 95th percentile over the
last second). As it grows the service gives up, in order, what costs
the least to lose: half of the interim results, then all of them, then
the full model for new utterances (a cheaper one with a higher word
error rate), and last new streams, which are refused before their
upgrade with a time to retry. A level rises as soon as the wait crosses
its threshold and falls only after the wait stays under a lower one for
a while: without that gap the service would flap between two levels,
and every client would see its interims come and go.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import pairwise

import numpy as np

log = logging.getLogger("ch06_pipeline")


class Level(IntEnum):
    NORMAL = 0
    FEWER_INTERIMS = 1
    NO_INTERIMS = 2
    CHEAPER_MODEL = 3
    REJECT_NEW_STREAMS = 4

    @property
    def label(self) -> str:
        return self.name.lower()


def _increasing(name: str, values: tuple[float, ...]) -> None:
    if len(values) != len(Level) - 1:
        raise ValueError(f"{name}: one threshold per level above normal")
    if any(b <= a for a, b in pairwise(values)):
        raise ValueError(f"{name} must increase, got {values}")


@dataclass(frozen=True)
class Thresholds:
    """Queue wait (seconds, p95) that moves each level up or down."""

    # to reach level 1, 2, 3, 4: well inside the 300 ms budget
    raise_at_s: tuple[float, ...] = (0.05, 0.08, 0.12, 0.16)
    # level 1, 2, 3, 4 is left once the wait is under this
    lower_at_s: tuple[float, ...] = (0.02, 0.04, 0.06, 0.08)
    hold_s: float = 3.0  # at a level at least this long before lowering
    window_s: float = 1.0  # the wait's percentile is over this window

    def __post_init__(self) -> None:
        _increasing("raise_at_s", self.raise_at_s)
        _increasing("lower_at_s", self.lower_at_s)
        pairs = zip(self.lower_at_s, self.raise_at_s, strict=True)
        if any(low >= high for low, high in pairs):
            raise ValueError("each lower_at_s must be under its raise_at_s")


@dataclass
class QueueWaits:
    """Queue waits of the last `window_s` seconds, oldest first."""

    window_s: float
    _seen: deque[tuple[float, float]] = field(default_factory=deque)

    def add(self, now: float, wait_s: float) -> None:
        self._seen.append((now, wait_s))

    def p95(self, now: float) -> float:
        while self._seen and self._seen[0][0] < now - self.window_s:
            self._seen.popleft()
        if not self._seen:
            return 0.0  # nothing waited: an idle queue
        return float(np.percentile([w for _, w in self._seen], 95))


# --8<-- [start:degradation_policy]
@dataclass
class DegradationPolicy:
    """The level, from queue waits; call `evaluate` on a steady tick."""

    thresholds: Thresholds
    clock: Callable[[], float]
    on_change: Callable[[Level, Level, float], None] = (
        lambda old, new, wait: None)
    level: Level = Level.NORMAL
    _since: float = field(default=float("-inf"), init=False)

    def evaluate(self, wait_s: float) -> Level:
        now, level = self.clock(), self.level
        if (level < Level.REJECT_NEW_STREAMS
                and wait_s >= self.thresholds.raise_at_s[level]):
            self._move(Level(level + 1), wait_s, now)  # at once
        elif (level > Level.NORMAL
              and wait_s < self.thresholds.lower_at_s[level - 1]
              and now - self._since >= self.thresholds.hold_s):
            # Down one step at a time, each held a while: the gap
            # between the two thresholds and the hold stop flapping.
            self._move(Level(level - 1), wait_s, now)
        return self.level

    def _move(self, new: Level, wait_s: float, now: float) -> None:
        old, self.level, self._since = self.level, new, now
        self.on_change(old, new, wait_s)
# --8<-- [end:degradation_policy]


def log_change(old: Level, new: Level, wait_s: float) -> None:
    log.warning("event=degradation_level from=%s to=%s queue_wait_p95_ms=%.1f",
                old.label, new.label, wait_s * 1000)
