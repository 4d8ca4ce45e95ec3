"""Ray Serve's request router, choosing by free decode capacity.

Chapter 12, "Horizontal scaling: GPU-aware routing". Serve asks a
request router to rank the replicas for each request; its default
samples two at random and takes the shorter queue (power of two
choices), and it ships a round-robin router too. This router ranks by
`gpu_aware.rank_replicas`, from the load each replica reports through
`record_routing_stats` (every half second here). Between two reports
it counts the streams it placed on each replica itself, so a burst of
new streams does not all land on the replica that looked emptiest at
the last report. A replica that has not reported yet is not ranked
ahead of one that has.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ray.serve.request_router import (
    FIFOMixin,
    PendingRequest,
    ReplicaID,
    RequestRouter,
    RunningReplica,
)

from ch12_scaling.gpu_aware import WAIT_BUDGET_S, rank_replicas
from ch12_scaling.replica_load import (
    LoadReportError,
    ReplicaLoad,
    parse_load,
)

STATS_PERIOD_S = 0.5


class GpuAwareRouter(FIFOMixin, RequestRouter):
    def initialize_state(self, wait_budget_s: float = WAIT_BUDGET_S,
                         **kwargs: Any) -> None:
        self.wait_budget_s = wait_budget_s
        self.placed: Counter[ReplicaID] = Counter()  # since last report
        self.report_seq: dict[ReplicaID, int] = {}

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
        ranked = [[by_id[key]] for key in rank_replicas(
            loads, self.placed, self.wait_budget_s)]
        unreported = [r for key, r in by_id.items() if key not in loads]
        return ranked + ([unreported] if unreported else [])

    def read(self, key: ReplicaID, replica: RunningReplica
             ) -> ReplicaLoad | None:
        try:
            load = parse_load(replica.routing_stats)
        except LoadReportError:
            return None
        if self.report_seq.get(key) != load.seq:
            self.report_seq[key] = load.seq
            self.placed[key] = 0  # the new report counts them
        return load

    def on_request_routed(self, pending_request: PendingRequest,
                          replica_id: ReplicaID, result: Any) -> None:
        self.placed[replica_id] += 1
