"""The stream-aware policy inside Ray Serve, from a context built here.

No cluster: each test builds the AutoscalingContext Serve would hand
the policy on a control-loop tick, and some run the policy through
Serve's own wrapper for custom policies, as the controller does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pytest

with warnings.catch_warnings():
    # Ray 2.60's own pydantic models warn as they are defined.
    warnings.simplefilter("ignore", DeprecationWarning)
    from ray.serve import autoscaling_policy as serve_autoscaling
    from ray.serve._private.common import DeploymentID, ReplicaID
    from ray.serve.autoscaling_policy import _apply_autoscaling_config
    from ray.serve.config import AutoscalingConfig, AutoscalingContext

from ch12_scaling.serve_policy import (
    ACTIVE_STREAMS,
    INFLIGHT_AUDIO_S,
    QUEUE_WAIT_P95_S,
    STATE_PREFIX,
    WARM,
    autoscaling_config,
    stream_aware_policy,
)

CAPACITY = 200.0  # streams per replica: target 140, up above 160
DEPLOYMENT = DeploymentID(name="asr", app_name="speech")
REPLICAS = [ReplicaID(unique_id=f"r{i}", deployment_id=DEPLOYMENT)
            for i in range(4)]


def context(now: float, streams: list[float], *, warm: list[float] | None
            = None, waits: list[float] | None = None, target: int | None
            = None, state: dict[str, Any] | None = None,
            config: AutoscalingConfig | None = None,
            bounds: tuple[int, int] = (2, 10)) -> AutoscalingContext:
    running = REPLICAS[:len(streams)]
    warm = warm if warm is not None else [1.0] * len(streams)
    waits = waits if waits is not None else [0.01] * len(streams)
    return AutoscalingContext(
        deployment_id=DEPLOYMENT, deployment_name="asr",
        app_name="speech", current_num_replicas=len(running),
        target_num_replicas=target if target is not None else len(running),
        running_replicas=running, total_num_requests=sum(streams),
        total_queued_requests=0.0,
        aggregated_metrics={
            ACTIVE_STREAMS: dict(zip(running, streams, strict=True)),
            WARM: dict(zip(running, warm, strict=True)),
            QUEUE_WAIT_P95_S: dict(zip(running, waits, strict=True)),
            INFLIGHT_AUDIO_S: {r: 0.0 for r in running}},
        raw_metrics=None, capacity_adjusted_min_replicas=bounds[0],
        capacity_adjusted_max_replicas=bounds[1],
        policy_state=state or {}, last_scale_up_time=None,
        last_scale_down_time=None, current_time=now,
        config=config or autoscaling_config(bounds[0], bounds[1],
                                            CAPACITY))


def test_the_metric_names_are_the_replicas_keys() -> None:
    assert (ACTIVE_STREAMS, INFLIGHT_AUDIO_S, QUEUE_WAIT_P95_S, WARM) == (
        "active_streams", "inflight_audio_s", "queue_wait_p95_s", "warm")


def test_scales_up_after_the_window_with_the_state_handed_back() -> None:
    busy = [190.0, 190.0, 190.0]  # 570 streams on 3: 190 each
    first, state = stream_aware_policy(context(1000.0, busy))
    assert first == 3 and state[f"{STATE_PREFIX}up_since"] == 1000.0
    second, state = stream_aware_policy(context(1060.0, busy, state=state))
    assert second == 5  # ceil(570 / 140)
    assert state[f"{STATE_PREFIX}up_since"] is None


def test_without_its_state_the_window_starts_over() -> None:
    busy = [190.0, 190.0, 190.0]
    stream_aware_policy(context(1000.0, busy))
    assert stream_aware_policy(context(1060.0, busy))[0] == 3


def test_replicas_not_warm_yet_count_as_capacity_to_come() -> None:
    # One warm replica carries 190; two more are up but warming.
    cold = context(0.0, [190.0, 0.0, 0.0], warm=[1.0, 0.2, 0.0])
    _, state = stream_aware_policy(cold)
    later = context(60.0, [190.0, 0.0, 0.0], warm=[1.0, 0.2, 0.0],
                    state=state)
    assert stream_aware_policy(later)[0] == 3
    # Asked for but not even running yet counts the same way.
    asked = context(60.0, [190.0, 190.0], target=4, state=state)
    assert stream_aware_policy(asked)[0] == 4


def test_a_replica_whose_queue_waits_too_long_counts_as_full() -> None:
    light = [120.0, 120.0, 120.0]  # under the up threshold ...
    slow = [0.01, 0.2, 0.2]  # ... but two replicas queue for 200 ms
    _, state = stream_aware_policy(context(0.0, light, waits=slow))
    decided, _ = stream_aware_policy(
        context(60.0, light, waits=slow, state=state))
    assert decided == 4  # (120 + 200 + 200) / 140, rounded up


def test_bounds_clamp_the_decision() -> None:
    flood = [600.0, 600.0, 600.0]
    _, state = stream_aware_policy(context(0.0, flood, bounds=(2, 4)))
    decided, _ = stream_aware_policy(
        context(60.0, flood, state=state, bounds=(2, 4)))
    assert decided == 4
    idle = context(0.0, [0.0, 0.0], bounds=(2, 4))
    _, state = stream_aware_policy(idle)
    decided, _ = stream_aware_policy(
        context(5000.0, [0.0, 0.0], state=state, bounds=(2, 4)))
    assert decided == 2


def test_serves_wrapper_passes_the_decision_through_unchanged() -> None:
    config = autoscaling_config(2, 10, CAPACITY)
    wrapped = _apply_autoscaling_config(config.policy.get_policy())
    busy = [190.0, 190.0, 190.0]
    decided, state = wrapped(context(1000.0, busy, config=config))
    assert decided == 3
    decided, state = wrapped(context(1060.0, busy, state=state,
                                     config=config))
    assert decided == 5  # at the policy's own 60 s, not later


@dataclass
class WallClock:
    """Stands in for the `time` module Serve's delay logic reads."""

    now: float = 0.0

    def time(self) -> float:
        return self.now


def test_serves_own_delay_would_swallow_the_policys_raise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    wall = WallClock()
    monkeypatch.setattr(serve_autoscaling, "time", wall)
    slow = autoscaling_config(2, 10, CAPACITY).model_copy(
        update={"upscale_delay_s": 30.0})
    wrapped = _apply_autoscaling_config(slow.policy.get_policy())
    busy = [190.0, 190.0, 190.0]
    state: dict[str, Any] = {}
    decisions = []
    for now in range(1000, 1600, 10):  # ten minutes of ticks
        wall.now = float(now)
        decided, state = wrapped(context(float(now), busy, state=state,
                                         config=slow))
        decisions.append(decided)
    # The policy raises once per window and then waits for the fleet;
    # Serve's delay wants the raise held for 30 s, and never sees it.
    assert set(decisions) == {3}


def test_the_config_sets_serves_delays_and_factors_out_of_the_way() -> None:
    config = autoscaling_config(2, 12, CAPACITY, up_window_s=30.0)
    assert (config.min_replicas, config.max_replicas) == (2, 12)
    assert config.target_ongoing_requests == CAPACITY
    assert config.upscale_delay_s == config.downscale_delay_s == 0.0
    assert config.upscaling_factor == config.downscaling_factor == 1.0
    assert config.policy.policy_kwargs["up_window_s"] == 30.0
    assert config.policy.get_policy() is not None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"down_at": 0.9}, "down_at"),
    ({"min_replicas": 5, "max_replicas": 3}, "min_replicas"),
])
def test_a_config_that_cannot_work_is_refused(kwargs: dict[str, Any],
                                              message: str) -> None:
    arguments: dict[str, Any] = {"min_replicas": 1, "max_replicas": 4,
                                 "capacity_per_replica": CAPACITY}
    with pytest.raises(ValueError, match=message):
        autoscaling_config(**(arguments | kwargs))
