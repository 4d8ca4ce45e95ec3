"""The hysteresis policy, its bounds, cold starts, and the schedule."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ch12_scaling.autoscaling import (
    Bounds,
    HourlyFloor,
    Hysteresis,
    HysteresisPolicy,
    ProportionalPolicy,
    Reading,
    ScheduledPolicy,
    Windows,
    floor_from_forecast,
)

# Streams per replica: size to 140, add above 160, remove under 110.
THRESHOLDS = Hysteresis(target=140, up_at=160, down_at=110,
                        up_window_s=60, down_window_s=600)


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


WIDE = Bounds(1, 20)


def policy(clock: Clock, bounds: Bounds = WIDE) -> HysteresisPolicy:
    return HysteresisPolicy(THRESHOLDS, bounds, clock)


def test_scales_up_after_the_short_window_to_the_target() -> None:
    clock = Clock()
    scaler = policy(clock)
    busy = Reading(per_ready=180, ready=4, current=4)  # 720 streams
    assert scaler.desired(busy) == 4  # seen once: not yet
    clock.now = 59
    assert scaler.desired(busy) == 4
    clock.now = 60
    assert scaler.desired(busy) == 6  # ceil(720 / 140), in one step


def test_a_dip_under_the_threshold_restarts_the_up_window() -> None:
    clock = Clock()
    scaler = policy(clock)
    scaler.desired(Reading(180, 4, 4))
    clock.now = 30
    assert scaler.desired(Reading(150, 4, 4)) == 4  # back in the band
    clock.now = 60
    assert scaler.desired(Reading(180, 4, 4)) == 4  # window starts again
    clock.now = 120
    assert scaler.desired(Reading(180, 4, 4)) == 6


def test_scales_down_one_step_only_after_the_long_window() -> None:
    clock = Clock()
    scaler = policy(clock)
    quiet = Reading(per_ready=50, ready=6, current=6)  # 300 streams
    for now in (0, 300, 599):
        clock.now = now
        assert scaler.desired(quiet) == 6
    clock.now = 600
    assert scaler.desired(quiet) == 5  # one replica, not down to 3
    clock.now = 660
    assert scaler.desired(Reading(60, 5, 5)) == 5  # a new window begins
    clock.now = 1260
    assert scaler.desired(Reading(60, 5, 5)) == 4


def test_never_removes_what_would_push_the_rest_past_the_target() -> None:
    clock = Clock()
    scaler = policy(clock)
    # 105 per replica on 3 is under down_at, but 2 would carry 157.5.
    for now in (0, 600, 1200):
        clock.now = now
        assert scaler.desired(Reading(105, 3, 3)) == 3


def test_replicas_still_starting_count_as_capacity_to_come() -> None:
    clock = Clock()
    scaler = policy(clock)
    # 400 streams on 2 warm replicas is 200 each; with 2 more starting
    # it will be 100 each: nothing more to ask for.
    starting = Reading(per_ready=200, ready=2, current=4)
    for now in (0, 60, 120, 600):
        clock.now = now
        assert scaler.desired(starting) == 4
    clock.now = 2000
    alone = HysteresisPolicy(THRESHOLDS, Bounds(1, 20), clock)
    alone.desired(Reading(200, 2, 2))
    clock.now = 2060
    assert alone.desired(Reading(200, 2, 2)) == 3  # without them, more


def test_no_step_down_while_a_replica_is_starting() -> None:
    clock = Clock()
    scaler = policy(clock)
    for now in (0, 600, 1200):
        clock.now = now
        assert scaler.desired(Reading(20, 5, 6)) == 6


def test_never_below_the_minimum_nor_above_the_maximum() -> None:
    clock = Clock()
    scaler = policy(clock, Bounds(2, 8))
    for now in range(0, 10_000, 60):
        clock.now = now
        assert scaler.desired(Reading(0, 2, 2)) == 2  # idle all day
    clock.now = 20_000
    scaler.desired(Reading(1000, 4, 4))
    clock.now = 20_060
    assert scaler.desired(Reading(1000, 4, 4)) == 8  # wants 29
    assert Bounds(2, 8).clamp(0) == 2 and Bounds(2, 8).clamp(50) == 8


def test_a_fleet_below_the_minimum_is_raised_at_once() -> None:
    assert policy(Clock(), Bounds(3, 8)).desired(Reading(100, 1, 1)) == 3


def test_without_hysteresis_the_fleet_follows_every_reading() -> None:
    naive = ProportionalPolicy(target=140, bounds=Bounds(1, 20))
    assert naive.desired(Reading(150, 10, 10)) == 11  # 1500 / 140
    assert naive.desired(Reading(139, 11, 11)) == 11
    assert naive.desired(Reading(120, 11, 11)) == 10  # and back at once
    assert naive.desired(Reading(0, 11, 11)) == 1


def test_the_hourly_floor_comes_from_the_forecast() -> None:
    forecast = [100.0] * 1440
    forecast[9 * 60 + 30] = 1000.0  # the busiest minute of 9:00-10:00
    floor = floor_from_forecast(forecast, per_replica=140)
    assert floor[9] == 8 and floor[8] == 1 and floor[10] == 1


def test_the_schedule_raises_the_floor_ahead_of_the_hour() -> None:
    replicas = tuple(6 if hour == 9 else 2 for hour in range(24))
    clock = Clock()
    scheduled = ScheduledPolicy(HourlyFloor(replicas, lead_s=300),
                                policy(clock))
    quiet = Reading(per_ready=50, ready=2, current=2)
    clock.now = 8 * 3600
    assert scheduled.desired(quiet) == 2
    clock.now = 9 * 3600 - 300  # warm by 9:00
    assert scheduled.desired(quiet) == 6
    clock.now = 10 * 3600
    assert scheduled.desired(Reading(50, 6, 6)) == 6  # down slowly


def test_no_step_down_the_rising_floor_would_undo() -> None:
    replicas = tuple(6 if hour == 9 else 4 for hour in range(24))
    quiet = Reading(per_ready=30, ready=5, current=5)
    for start, after in ((8 * 3600 + 2400, 5), (5 * 3600, 4)):
        clock = Clock(start)
        scheduled = ScheduledPolicy(HourlyFloor(replicas), policy(clock))
        assert scheduled.desired(quiet) == 5
        clock.now = start + 600  # the down window is over
        # At 8:50 the floor rises within ten minutes: keep the replica.
        assert scheduled.desired(quiet) == after


def test_the_windows_survive_a_round_trip_through_a_state_dict() -> None:
    windows = Windows(up_since=12.5)
    state = windows.as_state("p_")
    assert state == {"p_up_since": 12.5, "p_down_since": None}
    assert Windows.from_state(state, "p_") == windows
    junk = {"p_up_since": "soon", "p_down_since": True}
    assert Windows.from_state(junk, "p_") == Windows()


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Hysteresis(target=100, up_at=160, down_at=120), "down_at"),
    (lambda: Hysteresis(100, 160, 50, up_window_s=-1), "windows"),
    (lambda: Bounds(5, 3), "min_replicas"),
    (lambda: Bounds(0, 0), "max_replicas"),
    (lambda: HourlyFloor((1,) * 23), "24 hourly"),
    (lambda: floor_from_forecast([1.0] * 60, 10), "minute of a day"),
])
def test_settings_that_cannot_work_are_refused(build: object,
                                               message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]
