"""Routing across regions, inside a customer's residency boundary.

Chapter 12, "Multi-region deployment: latency-based request routing"
and "data sovereignty boundaries". Replicas are grouped into regions,
each reporting its round trip from the clients' entry point. A customer
who allows any region gets the nearest region with room, and spills to
the next only when it is full; a customer whose audio must stay in the
EU gets EU replicas alone, full or not: when they are full, one of them
answers and its admission refuses with `Retry-After`, and the stream is
never relieved by another region. The guard runs before the GPU-aware
ranking, so nothing after it can pick a replica outside the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ch12_scaling.gpu_aware import WAIT_BUDGET_S, K, rank_replicas
from ch12_scaling.replica_load import ReplicaLoad


# --8<-- [start:routing_residency_guard]
def route_in_regions(loads: Mapping[K, ReplicaLoad],
                     placed: Mapping[K, int], regions: Sequence[str],
                     wait_budget_s: float = WAIT_BUDGET_S) -> list[K]:
    """Replicas for a stream whose audio may be processed only in
    `regions`: theirs alone, nearest with room first. A full region is
    not relieved by another: its own replicas refuse, with a hint."""
    inside = {key: load for key, load in loads.items()
              if load.region in regions}
    return rank_replicas(inside, placed, wait_budget_s)
# --8<-- [end:routing_residency_guard]
