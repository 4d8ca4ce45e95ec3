"""The GPU-aware choice, its load reports, and Serve's router around it.

Pure: replicas are their reports. The most free decode capacity wins;
a cold, draining or memory-short replica is never chosen while another
may be; streams placed since a report count against it until the next;
a report that does not parse ranks its replica last, never first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

import pytest
from ray.serve.request_router import ReplicaID

from ch12_scaling.gpu_aware import free_decode_capacity, rank_replicas
from ch12_scaling.gpu_router import GpuAwareRouter
from ch12_scaling.replica_load import (
    LoadReportError,
    ReplicaLoad,
    parse_load,
)

IDLE = ReplicaLoad(taken_at=1000.0, active_streams=0, capacity_streams=12,
                   max_streams=24, queue_wait_p95_s=0.0, free_memory_bytes=1e9,
                   state_bytes_per_stream=1e6, warm=True, draining=False)


def load(**changes: Any) -> ReplicaLoad:
    return replace(IDLE, **changes)


def test_the_replica_with_most_room_comes_first() -> None:
    loads = {"a": load(active_streams=9), "b": load(active_streams=3),
             "c": load(active_streams=6)}
    assert rank_replicas(loads, {}) == ["b", "c", "a"]


def test_streams_placed_since_the_report_count() -> None:
    loads = {"a": load(active_streams=2), "b": load(active_streams=4)}
    assert rank_replicas(loads, {"a": 3}) == ["b", "a"]


def test_a_queueing_device_has_no_room_whatever_its_count() -> None:
    # Fewer streams, but its decode queue already waits past budget.
    loads = {"few": load(active_streams=2, queue_wait_p95_s=0.2),
             "many": load(active_streams=10, queue_wait_p95_s=0.01)}
    assert rank_replicas(loads, {}, wait_budget_s=0.05) == ["many", "few"]
    assert free_decode_capacity(loads["few"], 0, 0.05) == pytest.approx(
        0 - 0.2 / 0.05)


@pytest.mark.parametrize("unfit", [
    load(warm=False), load(draining=True),
    load(free_memory_bytes=0.5e6),
])
def test_cold_draining_or_full_memory_is_no_choice(
        unfit: ReplicaLoad) -> None:
    loads = {"unfit": unfit, "busy": load(active_streams=11)}
    assert rank_replicas(loads, {}) == ["busy"]
    assert free_decode_capacity(unfit, 0, 0.05) is None


def test_memory_counts_the_streams_placed_since_the_report() -> None:
    tight = load(free_memory_bytes=2.5e6)  # room for two more states
    assert free_decode_capacity(tight, 1, 0.05) is not None
    assert free_decode_capacity(tight, 2, 0.05) is None


def test_a_replica_at_its_admission_cap_is_no_choice() -> None:
    loads = {"capped": load(active_streams=3, max_streams=4),
             "busy": load(active_streams=11)}
    assert rank_replicas(loads, {}) == ["capped", "busy"]
    assert rank_replicas(loads, {"capped": 1}) == ["busy"]


def test_with_no_fit_replica_the_least_loaded_answers() -> None:
    loads = {"a": load(warm=False, active_streams=5),
             "b": load(draining=True, active_streams=1)}
    assert rank_replicas(loads, {}) == ["b", "a"]


def test_a_report_round_trips_and_bad_ones_are_refused() -> None:
    region = load(region="eu")
    assert parse_load(region.to_stats()) == region
    without_region = IDLE.to_stats()
    del without_region["region"]
    assert parse_load(without_region) == IDLE
    for broken in ({}, {**IDLE.to_stats(), "warm": "yes"},
                   {**IDLE.to_stats(), "active_streams": True},
                   {**IDLE.to_stats(), "queue_wait_p95_s": float("nan")}):
        with pytest.raises(LoadReportError):
            parse_load(broken)
    ints = {**IDLE.to_stats(), "free_memory_bytes": 7}
    assert parse_load(ints).free_memory_bytes == 7.0


@dataclass
class FakeReplica:
    replica_id: str
    routing_stats: Mapping[str, object]


async def test_the_serve_router_ranks_by_reports_and_counts_placements(
) -> None:
    router = object.__new__(GpuAwareRouter)
    router._use_replica_queue_len_cache = False  # Serve's, not ours
    router.initialize_state()
    a = FakeReplica("a", load(active_streams=4).to_stats())
    b = FakeReplica("b", load(active_streams=5).to_stats())
    silent = FakeReplica("silent", {})
    ranks = await router.choose_replicas([a, b, silent])  # type: ignore[list-item]
    assert [[str(r.replica_id) for r in rank] for rank in ranks] == [
        ["a"], ["b"], ["silent"]]
    for _ in range(2):  # two streams placed on a before it reports
        router.on_send_request("a")  # type: ignore[arg-type]
    ranks = await router.choose_replicas([a, b])  # type: ignore[list-item]
    assert [str(rank[0].replica_id) for rank in ranks] == ["b", "a"]
    # A report taken after the streams were admitted counts them.
    now = time.time()
    a.routing_stats = load(taken_at=now + 5, active_streams=6).to_stats()
    b.routing_stats = load(taken_at=now + 5, active_streams=5).to_stats()
    ranks = await router.choose_replicas([a, b])  # type: ignore[list-item]
    assert [str(rank[0].replica_id) for rank in ranks] == ["b", "a"]
    assert router.placed[cast(ReplicaID, "a")] == 0  # counted now
    # One taken just after they were placed may not: still counted.
    a.routing_stats = load(taken_at=now + 0.1).to_stats()
    for _ in range(2):
        router.on_send_request("a")  # type: ignore[arg-type]
    await router.choose_replicas([a, b])  # type: ignore[list-item]
    assert router.placed[cast(ReplicaID, "a")] == 2
