"""The GPU-aware choice: the replica with the most free decode capacity.

Chapter 12, "Horizontal scaling: GPU-aware routing". A stream is
placed once and then stays for minutes, so the choice counts for its
whole life: round robin spreads streams evenly by count, and long
streams pile up on whichever replicas drew them. This choice reads
what each replica's accelerator has left: streams it can still decode
within the 300 ms rule, less the streams placed since it last
reported, and less again when its decode queue already waits past the
budget. A replica that is cold, draining, or short of device memory
for one more stream's state is not a choice at all. The Serve router
(`gpu_router.py`) feeds it reports; it is pure, so it is tested
without a cluster.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

from ch12_scaling.replica_load import ReplicaLoad

K = TypeVar("K", bound=Hashable)
WAIT_BUDGET_S = 0.05  # chapter 6's first degradation step


# --8<-- [start:gpu_aware_choice]
def free_decode_capacity(load: ReplicaLoad, placed: int,
                         wait_budget_s: float) -> float | None:
    """Streams this replica can still take within the 300 ms rule;
    None: it must not be sent a new stream."""
    if load.draining or not load.warm:
        return None  # a cold replica would hold the stream in warm-up
    if load.active_streams + placed >= load.max_streams:
        return None  # it would refuse the stream
    if load.free_memory_bytes < (placed + 1) * load.state_bytes_per_stream:
        return None  # one more stream's state would not fit
    free = load.capacity_streams - load.active_streams - placed
    if load.queue_wait_p95_s > wait_budget_s:
        free = min(free, 0)  # queueing already: its count overstates
    return free - load.queue_wait_p95_s / wait_budget_s


def rank_replicas(loads: Mapping[K, ReplicaLoad], placed: Mapping[K, int],
                  wait_budget_s: float = WAIT_BUDGET_S) -> list[K]:
    """Replicas with room first, the nearest region's first (by round
    trip), then the most free capacity. When none may take a stream,
    every one, least loaded first: its own admission then refuses with
    a reason, rather than the stream waiting for ever."""
    scores = {key: free_decode_capacity(load, placed.get(key, 0),
                                        wait_budget_s)
              for key, load in loads.items()}
    usable = {key: s for key, s in scores.items() if s is not None}
    if not usable:
        return sorted(loads, key=lambda key: loads[key].active_streams)
    return sorted(usable, key=lambda key: (
        usable[key] <= 0, loads[key].rtt_ms, -usable[key]))
# --8<-- [end:gpu_aware_choice]
