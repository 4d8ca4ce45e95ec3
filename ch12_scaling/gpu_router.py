"""Ray Serve's request router, choosing by free decode capacity.

Chapter 12, "Horizontal scaling: GPU-aware routing". Serve asks a
request router to rank the replicas for each request; its default
samples two at random and takes the shorter queue (power of two
choices), and it ships a round-robin router too. This router ranks by
`gpu_aware.rank_replicas`, from the load each replica reports through
`record_routing_stats` (every half second here). Between two reports
it counts the streams it placed on each replica itself, so a burst of
new streams does not all land on the replica that looked emptiest at
the last report: every stream placed since a moment before the report
was taken (a stream placed is admitted a little later), so a stream is
counted twice for a moment rather than not at all. A replica that has
not reported yet is not ranked ahead of one that has. With regions, it
reads whose stream it is from the upgrade request the proxy forwards
(Serve's own pickled request, so from Serve, not from the client), and
keeps the stream inside its customer's regions
(`regional_routing.route_in_regions`); a replica whose region is not
yet known is then never a choice.
"""

from __future__ import annotations

import pickle
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ray.serve.request_router import (
    FIFOMixin,
    PendingRequest,
    ReplicaID,
    RequestRouter,
    RunningReplica,
)

from ch12_scaling.gpu_aware import WAIT_BUDGET_S, rank_replicas
from ch12_scaling.regional_routing import route_in_regions
from ch12_scaling.replica_load import (
    LoadReportError,
    ReplicaLoad,
    parse_load,
)
from ch12_scaling.settings import stream_owners

STATS_PERIOD_S = 0.5
ADMISSION_ALLOWANCE_S = 0.25  # from placing a stream to its admission


class GpuAwareRouter(FIFOMixin, RequestRouter):
    def initialize_state(self, wait_budget_s: float = WAIT_BUDGET_S,
                         regions: str = "", residency: str = "",
                         key_owners: str = "", **kwargs: Any) -> None:
        self.wait_budget_s = wait_budget_s
        self.placed_at: dict[ReplicaID, list[float]] = {}  # wall clock
        self.owners = stream_owners(regions, residency, key_owners)

    @property
    def placed(self) -> Counter[ReplicaID]:
        """Streams placed on each replica that its report may not count."""
        return Counter({key: len(times)
                        for key, times in self.placed_at.items()})

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        if pending_request is not None:
            # Back off between rounds when every replica is full.
            pending_request.routing_context.should_backoff = True
        by_id = {r.replica_id: r for r in candidate_replicas}
        loads = {key: load for key, replica in by_id.items()
                 if (load := self.read(key, replica)) is not None}
        placed = self.placed
        if self.owners is None:
            ranked = rank_replicas(loads, placed, self.wait_budget_s)
            # Not reported yet: last, together (Serve picks among them).
            rest = [r for key, r in by_id.items() if key not in loads]
        else:  # a replica whose region is unknown is never a choice
            ranked = route_in_regions(
                loads, placed, self.regions_of(pending_request),
                self.wait_budget_s)
            # None of the customer's regions has a replica: one that has
            # reported refuses the stream at its door, with a hint.
            ranked = ranked or sorted(
                loads, key=lambda key: loads[key].active_streams)
            rest = []
        return [[by_id[key]] for key in ranked] + ([rest] if rest else [])

    def regions_of(self, pending: PendingRequest | None) -> tuple[str, ...]:
        assert self.owners is not None
        scope = scope_of(pending)
        if scope is None:
            return self.owners.policy.default_regions
        return self.owners.regions_of(scope.get("path", ""),
                                      scope.get("headers", []),
                                      scope.get("query_string", b""))

    def read(self, key: ReplicaID, replica: RunningReplica
             ) -> ReplicaLoad | None:
        try:
            load = parse_load(replica.routing_stats)
        except LoadReportError:
            return None
        since = load.taken_at - ADMISSION_ALLOWANCE_S
        self.placed_at[key] = [t for t in self.placed_at.get(key, [])
                               if t > since]
        return load

    def on_send_request(self, replica_id: ReplicaID) -> None:
        """Serve sends a request to `replica_id`: a stream placed."""
        super().on_send_request(replica_id)
        self.placed_at.setdefault(replica_id, []).append(time.time())


def scope_of(pending: PendingRequest | None) -> Mapping[str, Any] | None:
    """The ASGI scope of the request Serve's proxy forwards: its first
    argument, the proxy's own pickled request."""
    if pending is None or not pending.args:
        return None
    forwarded = pending.args[0]
    if not isinstance(forwarded, bytes):
        return None
    try:
        request = pickle.loads(forwarded)  # from Serve's proxy only
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    scope = getattr(request, "asgi_scope", None)
    return scope if isinstance(scope, Mapping) else None
