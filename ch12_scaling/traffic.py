"""A day of streaming traffic: concurrent streams, minute by minute.

Chapter 12, "Auto-scaling for inference". An autoscaler is only as
good as the day it is tested on: a smooth curve flatters every policy.
This day has the three things real speech traffic has: a diurnal curve
(busy afternoon, quiet night), bursts nobody scheduled (a live event, a
customer's batch of calls) that arrive within minutes, and noise from
minute to minute (streams start and end at random, and people arrive
in clumps). The curve alone, without bursts or noise, is the forecast a
scheduled policy plans from. Everything random comes from one seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MINUTES_PER_DAY = 24 * 60
# Minute-to-minute noise is correlated: a clump of arrivals lasts a
# few minutes. An AR(1) process with this coefficient keeps about half
# of a deviation after two minutes.
NOISE_MEMORY = 0.7
BURST_RAMP_MIN = 2  # a burst's audience joins over a couple of minutes


@dataclass(frozen=True)
class TrafficShape:
    """The day's parameters; streams are concurrent streams."""

    peak_streams: float = 3000.0
    trough_streams: float = 300.0
    peak_minute: int = 14 * 60  # the afternoon is the busiest time
    bursts: int = 4
    burst_streams: float = 600.0  # a burst's mean size; each varies
    burst_minutes: int = 20
    noise: float = 0.04  # relative spread of the minute-to-minute noise
    minutes: int = MINUTES_PER_DAY

    def __post_init__(self) -> None:
        if not 0 <= self.trough_streams <= self.peak_streams:
            raise ValueError("trough_streams must be between 0 and"
                             f" peak_streams, got {self.trough_streams}")
        if not 0 <= self.peak_minute < MINUTES_PER_DAY:
            raise ValueError("peak_minute must be a minute of the day,"
                             f" got {self.peak_minute}")
        if self.bursts < 0 or self.burst_streams < 0:
            raise ValueError("bursts and burst_streams cannot be negative")
        if not 1 <= self.burst_minutes <= self.minutes:
            raise ValueError("burst_minutes must be between 1 and the"
                             f" day's length, got {self.burst_minutes}")
        if not 0 <= self.noise < 1:
            raise ValueError(f"noise must be in [0, 1), got {self.noise}")
        if self.minutes < 1:
            raise ValueError(f"minutes must be positive, got {self.minutes}")


def expected_streams(shape: TrafficShape) -> npt.NDArray[np.float64]:
    """The diurnal curve alone: what a forecast from past days says."""
    minute = np.arange(shape.minutes, dtype=np.float64)
    phase = 2 * math.pi * (minute - shape.peak_minute) / MINUTES_PER_DAY
    # Raised to 1.5, the cosine's hump is narrower: a long quiet night.
    day = ((1 + np.cos(phase)) / 2) ** 1.5
    span = shape.peak_streams - shape.trough_streams
    return shape.trough_streams + span * day


def burst_streams(shape: TrafficShape,
                  rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Unscheduled bursts: each ramps up, holds, and ramps down."""
    extra = np.zeros(shape.minutes)
    last_start = max(1, shape.minutes - shape.burst_minutes)
    for _ in range(shape.bursts):
        start = int(rng.integers(0, last_start))
        size = shape.burst_streams * rng.uniform(0.5, 1.5)
        ramp = np.minimum(1.0, (np.arange(shape.burst_minutes) + 1)
                          / BURST_RAMP_MIN)
        ramp = np.minimum(ramp, ramp[::-1])
        end = min(shape.minutes, start + shape.burst_minutes)
        extra[start:end] += size * ramp[:end - start]
    return extra


def clumped_noise(shape: TrafficShape,
                  rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Relative noise, correlated from one minute to the next."""
    innovation = shape.noise * math.sqrt(1 - NOISE_MEMORY ** 2)
    noise = np.zeros(shape.minutes)
    level = rng.normal(0.0, shape.noise)
    for minute in range(shape.minutes):
        level = NOISE_MEMORY * level + rng.normal(0.0, innovation)
        noise[minute] = level
    return noise


def day_of_traffic(shape: TrafficShape,
                   seed: int) -> npt.NDArray[np.int64]:
    """Concurrent streams in each minute of the day, for one seed."""
    rng = np.random.default_rng(seed)
    mean = expected_streams(shape) + burst_streams(shape, rng)
    mean = np.maximum(0.0, mean * (1 + clumped_noise(shape, rng)))
    # Streams start and end independently: a count around the mean.
    return rng.poisson(mean).astype(np.int64)
