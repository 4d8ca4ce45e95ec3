"""Spot preemption: the notice each provider gives, and the drain.

Chapter 12, "Cost optimization: spot and preemptible GPU instances".
A spot replica is taken back with a notice: two minutes on AWS, thirty
seconds on GCP. Draining uses it: the replica takes no new streams;
a stream that will end on its own before the deadline finishes
normally; every other stream is told, at the deadline, to reconnect,
and lands on another replica. The deadline leaves a margin before the
machine goes, for the final results to flush and the sockets to close
cleanly, and no drain runs longer than MAX_DRAIN_S, whatever notice a
provider gives: it bounds how long a replica can hold a shutdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_DRAIN_S = 120.0
# Seconds of notice before the machine is taken (gpu_prices.toml has
# the sources): AWS's two-minute interruption notice, GCP's 30 s.
NOTICE_S = {"aws": 120.0, "gcp": 30.0}
# To finish open utterances (chapter 4 gives them 5 s), send their finals
# and close, before the machine goes: the live drain keeps it too.
DRAIN_MARGIN_S = 10.0


@dataclass(frozen=True)
class DrainPlan:
    """What a notice does to a replica's streams."""

    deadline_s: float  # after the notice: the rest reconnect then
    finishing: int  # streams that end on their own before it
    reconnecting: int  # streams told to reconnect at it


def drain_plan(remaining_s: Sequence[float], notice_s: float,
               margin_s: float = DRAIN_MARGIN_S) -> DrainPlan:
    """Split the streams by the audio each has left, in seconds."""
    if notice_s < 0 or margin_s < 0:
        raise ValueError("notice and margin cannot be negative")
    deadline = max(0.0, min(notice_s, MAX_DRAIN_S) - margin_s)
    finishing = sum(1 for left in remaining_s if left <= deadline)
    return DrainPlan(deadline, finishing, len(remaining_s) - finishing)
