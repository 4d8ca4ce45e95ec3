"""Arrival processes for load tests: steady Poisson and bursty on/off.

Chapter 3, "Why GPUs sit idle" and "Static vs dynamic vs continuous
batching". Requests from many independent users arrive as a Poisson
process; real traffic also comes in bursts, which fill queues that the
mean rate says should be empty. Both are seeded, so a benchmark run
repeats exactly, and both have the same mean rate, so a comparison
between them shows the cost of burstiness alone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Arrivals = Callable[[float, int, np.random.Generator], np.ndarray]
"""(mean rate per second, count, generator) -> gaps between arrivals."""


def poisson_gaps(rate: float, count: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Exponential gaps: independent arrivals at a steady mean rate."""
    return rng.exponential(1 / rate, count)


def on_off_gaps(rate: float, count: int, rng: np.random.Generator,
                burst_factor: float = 5.0,
                mean_burst: float = 20.0) -> np.ndarray:
    """A two-state Markov-modulated Poisson process: bursts at
    `burst_factor` x the mean rate, of `mean_burst` arrivals on average
    (geometric), separated by silences (exponential) long enough that
    the mean rate is `rate`. Bursts are counted in arrivals, not
    seconds, so every load level sees bursts of the same depth."""
    gaps = rng.exponential(1 / (rate * burst_factor), count)
    mean_silence_s = mean_burst / rate * (1 - 1 / burst_factor)
    burst_ends = rng.random(count) < 1 / mean_burst
    gaps[burst_ends] += rng.exponential(mean_silence_s,
                                        int(burst_ends.sum()))
    return gaps


ARRIVALS: dict[str, Arrivals] = {
    "poisson": poisson_gaps,
    "bursty": on_off_gaps,
}
