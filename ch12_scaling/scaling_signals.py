"""What each candidate scaling signal reads, minute by minute.

Chapter 12, "Auto-scaling for inference: scaling signals". Five
signals an autoscaler can watch, each as a replica would report it
given its load, so the simulation can show how each one behaves: GPU
utilisation saturates (a decode loop keeps the GPU busy long before
the queue grows, and it reads 100% whether the replica is full or
drowning); queue depth stays near zero until the queue grows, then
explodes; p95 latency is a window's figure and lags; memory is flat
(weights and preallocated pools fill it from the first minute; a
stream's state adds kilobytes); streams per replica follows the load
itself. Each signal comes with the thresholds its policy uses, in its
own unit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ch12_scaling.autoscaling import Hysteresis
from ch12_scaling.replica_latency import MAX_P95_MS, LatencyModel

# Assumptions of the signals' shapes, each a constant with its reason:
# batched decoding keeps a kernel running most of the time before the
# queue builds; nvidia-smi's utilisation counts time with a kernel.
GPU_BUSY_AT_CAPACITY = 0.9
QUEUE_DEPTH_CAP = 100.0  # decode requests waiting, once the queue runs
MEMORY_AT_IDLE = 0.70  # weights, CUDA context, preallocated pools
MEMORY_PER_STREAM = 0.00005  # a stream's state: ~1 MB of a 24 GB GPU
LATENCY_WINDOW_MIN = 5  # a p95 over the last five minutes, as a
# Prometheus histogram_quantile over rate(...[5m]) gives it


@dataclass(frozen=True)
class Minute:
    """What one minute looked like to the fleet."""

    streams: int
    ready: int
    p95_ms: float

    @property
    def per_ready(self) -> float:
        return self.streams / max(1, self.ready)


@dataclass(frozen=True)
class Signal:
    """A signal: its reading per ready replica, and its thresholds."""

    name: str
    read: Callable[[Sequence[Minute]], float]  # from the minutes so far
    hysteresis: Hysteresis

    @property
    def target(self) -> float:
        return self.hysteresis.target


def signals(model: LatencyModel) -> tuple[Signal, ...]:
    """The five signals, thresholds set for a replica of `model`."""
    capacity = model.capacity.streams

    def gpu_util(minutes: Sequence[Minute]) -> float:
        share = model.share(minutes[-1].per_ready)
        return min(1.0, share * GPU_BUSY_AT_CAPACITY)

    def queue_depth(minutes: Sequence[Minute]) -> float:
        busy = model.busy(minutes[-1].per_ready)
        if busy >= 1.0:
            return QUEUE_DEPTH_CAP
        return min(QUEUE_DEPTH_CAP, busy * busy / (1.0 - busy))

    def p95_latency(minutes: Sequence[Minute]) -> float:
        window = minutes[-LATENCY_WINDOW_MIN:]
        return sum(min(m.p95_ms, MAX_P95_MS) for m in window) / len(window)

    def memory(minutes: Sequence[Minute]) -> float:
        return MEMORY_AT_IDLE + MEMORY_PER_STREAM * minutes[-1].per_ready

    def streams(minutes: Sequence[Minute]) -> float:
        return minutes[-1].per_ready

    return (
        Signal("gpu_util", gpu_util, Hysteresis(0.70, 0.80, 0.50)),
        Signal("queue_depth", queue_depth, Hysteresis(1.0, 1.5, 0.5)),
        Signal("p95_latency", p95_latency,
               Hysteresis(270.0, 285.0, 262.0)),
        Signal("memory", memory, Hysteresis(0.80, 0.85, 0.60)),
        # The recommended one: 70% of the measured capacity as target
        # leaves room for growth during a cold start.
        Signal("streams", streams, Hysteresis(
            0.70 * capacity, 0.80 * capacity, 0.55 * capacity)),
    )


def stream_signal(model: LatencyModel) -> Signal:
    """The recommended one: streams per ready replica."""
    return next(s for s in signals(model) if s.name == "streams")
