"""The degradation policy: up at once, down slowly, never flapping.

Driven by an injected clock and given queue waits, so each test states
the waits a level sees and the time they come at.
"""

from __future__ import annotations

import pytest

from ch06_pipeline.degradation import (
    DegradationPolicy,
    Level,
    QueueWaits,
    Thresholds,
)
from ch06_pipeline.service_level import LevelCadence

THRESHOLDS = Thresholds(raise_at_s=(0.05, 0.08, 0.12, 0.16),
                        lower_at_s=(0.02, 0.04, 0.06, 0.08), hold_s=3.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def policy() -> tuple[DegradationPolicy, Clock, list[tuple[Level, Level]]]:
    clock = Clock()
    changes: list[tuple[Level, Level]] = []
    return (DegradationPolicy(
        THRESHOLDS, clock, lambda old, new, wait: changes.append(
            (old, new))), clock, changes)


def test_a_long_wait_raises_the_level_one_step_per_evaluation() -> None:
    levels, clock, changes = policy()
    seen = []
    for _ in range(6):
        clock.now += 0.25
        seen.append(levels.evaluate(0.5))
    assert seen == [1, 2, 3, 4, 4, 4]
    assert changes[-1] == (Level.CHEAPER_MODEL, Level.REJECT_NEW_STREAMS)


def test_the_level_falls_only_after_the_hold_and_one_step_at_a_time(
) -> None:
    levels, clock, _ = policy()
    for _ in range(2):
        levels.evaluate(0.1)  # up to NO_INTERIMS
    assert levels.level == Level.NO_INTERIMS
    clock.now += 2.9
    assert levels.evaluate(0.0) == Level.NO_INTERIMS  # held
    clock.now += 0.1
    assert levels.evaluate(0.0) == Level.FEWER_INTERIMS
    assert levels.evaluate(0.0) == Level.FEWER_INTERIMS  # held again
    clock.now += 3.0
    assert levels.evaluate(0.0) == Level.NORMAL


def test_a_wait_between_the_thresholds_holds_the_level() -> None:
    """A wait that swings inside the gap (over lower, under raise)
    moves nothing: the hysteresis that stops flapping."""
    levels, clock, changes = policy()
    levels.evaluate(0.06)  # to FEWER_INTERIMS
    for wait in [0.03, 0.07, 0.021, 0.079] * 20:
        clock.now += 1.0
        levels.evaluate(wait)
    assert changes == [(Level.NORMAL, Level.FEWER_INTERIMS)]


def test_without_hysteresis_the_same_waits_would_flap() -> None:
    """The control case: thresholds with no gap between them change
    level on every swing of the same signal."""
    flat = Thresholds(raise_at_s=(0.05, 0.08, 0.12, 0.16),
                      lower_at_s=(0.0499, 0.0799, 0.1199, 0.1599),
                      hold_s=0.0)
    clock = Clock()
    changes: list[Level] = []
    levels = DegradationPolicy(flat, clock,
                               lambda old, new, wait: changes.append(new))
    for wait in [0.03, 0.07] * 10:
        clock.now += 1.0
        levels.evaluate(wait)
    assert len(changes) >= 19


@pytest.mark.parametrize("raise_at, lower_at", [
    ((0.05, 0.08, 0.12), (0.02, 0.04, 0.06)),  # a level short
    ((0.05, 0.04, 0.12, 0.16), (0.02, 0.03, 0.06, 0.08)),  # not rising
    ((0.05, 0.08, 0.12, 0.16), (0.05, 0.06, 0.07, 0.08)),  # no gap
])
def test_inconsistent_thresholds_are_refused(
        raise_at: tuple[float, ...], lower_at: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        Thresholds(raise_at_s=raise_at, lower_at_s=lower_at)


def test_queue_waits_are_the_95th_percentile_of_the_last_window() -> None:
    waits = QueueWaits(window_s=1.0)
    for i in range(100):
        waits.add(10.0, 0.001 * i)
    waits.add(10.5, 0.5)
    assert waits.p95(10.6) == pytest.approx(0.095, abs=0.002)
    assert waits.p95(11.01) == 0.5  # the older ones left the window
    assert waits.p95(12.0) == 0.0  # nothing waited: idle


@pytest.mark.parametrize("level, min_interim_s, shown", [
    (Level.NORMAL, 0.0, True),
    (Level.FEWER_INTERIMS, 0.5, True),
    (Level.NO_INTERIMS, 1.0, False),
    (Level.CHEAPER_MODEL, 1.0, False),
])
def test_each_level_sets_the_interim_cadence(
        level: Level, min_interim_s: float, shown: bool) -> None:
    cadence = LevelCadence(lambda: level)
    assert (cadence.min_interim_s, cadence.show_interims) == (
        min_interim_s, shown)
