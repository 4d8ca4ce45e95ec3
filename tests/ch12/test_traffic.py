"""A day of streaming traffic: curve, bursts, noise, one seed."""

from __future__ import annotations

import numpy as np
import pytest

from ch12_scaling.traffic import (
    TrafficShape,
    burst_streams,
    day_of_traffic,
    expected_streams,
)


def test_the_same_seed_gives_the_same_day() -> None:
    shape = TrafficShape()
    assert np.array_equal(day_of_traffic(shape, 7), day_of_traffic(shape, 7))
    assert not np.array_equal(day_of_traffic(shape, 7),
                              day_of_traffic(shape, 8))


def test_the_curve_peaks_at_the_peak_minute_and_bottoms_at_night() -> None:
    shape = TrafficShape(peak_streams=2000, trough_streams=100,
                         peak_minute=600)
    curve = expected_streams(shape)
    assert len(curve) == 1440
    assert int(np.argmax(curve)) == 600 and curve[600] == pytest.approx(2000)
    # Twelve hours from the peak is the bottom of the night.
    assert curve[(600 + 720) % 1440] == pytest.approx(100)


def test_without_bursts_or_noise_the_day_follows_the_curve() -> None:
    shape = TrafficShape(bursts=0, noise=0.0)
    day = day_of_traffic(shape, 1)
    curve = expected_streams(shape)
    # Only the count of independent streams varies: within 2% a day.
    assert day.sum() == pytest.approx(curve.sum(), rel=0.02)
    assert np.abs(day - curve).max() < 6 * np.sqrt(curve.max())


def test_bursts_are_as_long_and_as_large_as_asked() -> None:
    shape = TrafficShape(bursts=3, burst_streams=500, burst_minutes=20)
    extra = burst_streams(shape, np.random.default_rng(0))
    assert 0 < np.count_nonzero(extra) <= 3 * 20
    assert extra.max() <= 3 * 1.5 * 500  # at most all three overlapping


def test_minute_to_minute_noise_grows_with_the_noise_setting() -> None:
    def jitter(noise: float) -> float:
        # A flat, busy day: the count's own spread is under 1%.
        flat = TrafficShape(peak_streams=20_000, trough_streams=20_000,
                            bursts=0, noise=noise)
        day = day_of_traffic(flat, 3)
        return float(np.std(np.diff(day) / day[1:]))

    assert jitter(0.08) > 1.5 * jitter(0.01)


@pytest.mark.parametrize("bad", [
    {"trough_streams": 500.0, "peak_streams": 400.0},
    {"peak_minute": 1440},
    {"noise": 1.0},
    {"burst_minutes": 0},
    {"bursts": -1},
    {"minutes": 0},
])
def test_a_shape_that_cannot_be_a_day_is_refused(
        bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrafficShape(**bad)  # type: ignore[arg-type]
