"""The stream-aware policy as a Ray Serve custom autoscaling policy.

Chapter 12, "Auto-scaling for inference" (Ray Serve). Each replica's
`record_autoscaling_stats()` returns the four figures named below;
Serve averages each over `look_back_period_s` per running replica and
hands them to the policy in `ctx.aggregated_metrics`. A replica counts
as ready once `warm` (averaged) is at least one half; every other
replica Serve has been asked for, running or not, is still starting,
and counts as capacity to come. A ready replica whose decode queue
waits longer than the budget counts as full, whatever its stream
count. `inflight_audio_s` is not read: it tells the same story as the
queue wait, later. The hysteresis windows live in the policy state
Serve hands back on the next tick. `autoscaling_config()` sets Serve's
own parts out of the way. Serve wraps a custom policy with its
upscale/downscale delays (a new answer must hold that long before
Serve applies it) and its scaling factors (which shrink each step):
both delays are 0 and both factors 1. A delay would not merely add to
the policy's window: the policy gives a raise once, when its window
closes, then waits for the fleet to follow, so Serve would never see
the raise held and never apply it. Serve still clamps to min/max
replicas, as the policy does, and still bypasses the policy when a
deployment at zero replicas gets a request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from ray.serve.config import (
    AutoscalingConfig,
    AutoscalingContext,
    AutoscalingPolicy,
)

from ch12_scaling.autoscaling import (
    Bounds,
    Hysteresis,
    HysteresisPolicy,
    Reading,
    Windows,
)

# What each replica's record_autoscaling_stats() returns.
ACTIVE_STREAMS = "active_streams"  # streams open on the replica
INFLIGHT_AUDIO_S = "inflight_audio_s"  # received, not yet decoded
QUEUE_WAIT_P95_S = "queue_wait_p95_s"  # decode-queue wait, last 10 s
WARM = "warm"  # 1.0 once the model is loaded and warmed up

STATE_PREFIX = "stream_aware_"  # our keys in Serve's policy_state
# Chapter 6's first degradation level trips at a 50 ms queue wait:
# a replica past it is full, and scaling should start before it sheds.
QUEUE_WAIT_BUDGET_S = 0.05


def fractions(capacity: float, settings: Mapping[str, Any]) -> Hysteresis:
    """Thresholds from policy_kwargs: shares of the capacity."""
    return Hysteresis(
        target=capacity * float(settings.get("target", 0.70)),
        up_at=capacity * float(settings.get("up_at", 0.80)),
        down_at=capacity * float(settings.get("down_at", 0.55)),
        up_window_s=float(settings.get("up_window_s", 60.0)),
        down_window_s=float(settings.get("down_window_s", 600.0)))


def stream_reading(ctx: AutoscalingContext, capacity: float,
                   wait_budget_s: float) -> Reading:
    """Streams per ready replica, the ready ones, and all asked for."""
    metrics = ctx.aggregated_metrics or {}
    warm = metrics.get(WARM, {})
    streams = metrics.get(ACTIVE_STREAMS, {})
    waits = metrics.get(QUEUE_WAIT_P95_S, {})
    ready = [r for r in ctx.running_replicas if warm.get(r, 0.0) >= 0.5]
    load = 0.0
    for replica in ready:
        active = streams.get(replica, 0.0)
        if waits.get(replica, 0.0) > wait_budget_s:
            active = max(active, capacity)
        load += active
    per_ready = load / len(ready) if ready else 0.0
    return Reading(per_ready, len(ready), ctx.target_num_replicas)


def stream_aware_policy(ctx: AutoscalingContext
                        ) -> tuple[int, dict[str, Any]]:
    """Serve's policy: the chapter's hysteresis on the replicas' stats.
    Capacity is the config's target_ongoing_requests (a WebSocket is
    one ongoing request for its whole life); the thresholds' shares
    and windows are the policy's policy_kwargs."""
    config = ctx.config
    settings = config.policy.policy_kwargs if config is not None else {}
    capacity = float(config.target_ongoing_requests
                     if config is not None else 1.0)
    # Serve sets current_time on every tick; time.time() is its clock.
    now = ctx.current_time if ctx.current_time is not None else time.time()
    policy = HysteresisPolicy(
        fractions(capacity, settings),
        Bounds(ctx.capacity_adjusted_min_replicas,
               max(1, ctx.capacity_adjusted_max_replicas)),
        clock=lambda: now,
        windows=Windows.from_state(ctx.policy_state, STATE_PREFIX))
    wait_budget_s = float(settings.get("queue_wait_budget_s",
                                       QUEUE_WAIT_BUDGET_S))
    desired = policy.desired(stream_reading(ctx, capacity, wait_budget_s))
    return desired, dict(policy.windows.as_state(STATE_PREFIX))


def autoscaling_config(min_replicas: int, max_replicas: int,
                       capacity_per_replica: float,
                       target: float = 0.70, up_at: float = 0.80,
                       down_at: float = 0.55, up_window_s: float = 60.0,
                       down_window_s: float = 600.0,
                       look_back_period_s: float = 30.0
                       ) -> AutoscalingConfig:
    """A deployment's autoscaling_config running the stream-aware
    policy; the thresholds are shares of `capacity_per_replica`."""
    # Validate here, where the caller can see which value is wrong.
    shares = Hysteresis(target, up_at, down_at, up_window_s, down_window_s)
    Bounds(min_replicas, max_replicas)
    kwargs: dict[str, float] = asdict(shares)
    kwargs["queue_wait_budget_s"] = QUEUE_WAIT_BUDGET_S
    return AutoscalingConfig(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_ongoing_requests=capacity_per_replica,
        look_back_period_s=look_back_period_s,
        # The policy holds its own windows; a delay of Serve's would
        # swallow its raises (see the module's docstring).
        upscale_delay_s=0.0,
        downscale_delay_s=0.0,
        upscaling_factor=1.0,
        downscaling_factor=1.0,
        # Ray declares AutoscalingPolicy.__init__ without types.
        policy=AutoscalingPolicy(  # type: ignore[no-untyped-call]
            policy_function=stream_aware_policy, policy_kwargs=kwargs),
    )
