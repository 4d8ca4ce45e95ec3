"""Capacity planning: replicas per region for a peak, and their cost.

Chapter 12, "Capacity planning for inference workloads". A replica's
capacity is measured (streams within the latency target); a plan
keeps each replica some headroom below it, splits the peak between
regions, adds spares so a region survives losing a replica, and, with
failover, sizes every region to take in a lost region's users too.
Shares and headroom are exact fractions: 60% of 105 streams on
replicas of 63 usable streams is one replica, never two from a
rounding error. Cost is the accelerators times their hourly price
times 730 hours, with a share of them on spot if asked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction

HOURS_PER_MONTH = 730  # 8,760 hours a year over 12 months


# --8<-- [start:capacity_plan]
def capacity_plan(peak_streams: int, per_replica: int,
                  shares: Mapping[str, Fraction],
                  headroom: Fraction = Fraction(1, 5), spares: int = 1,
                  failover: bool = False) -> dict[str, int]:
    """Replicas in each region for a peak of concurrent streams.

    A region carries its share of the peak; with `failover`, also the
    largest share of any other region, since a lost region's users go
    to the nearest region left, which may be this one. A replica is
    loaded `headroom` below its measured capacity, which absorbs
    bursts while more replicas start; `spares` more replicas keep the
    region within its target when that many are lost.
    """
    usable = per_replica * (1 - headroom)
    plan = {}
    for region, share in shares.items():
        taken_in = max((other for name, other in shares.items()
                        if name != region), default=Fraction(0))
        load = peak_streams * (share + taken_in if failover else share)
        plan[region] = math.ceil(load / usable) + spares
    return plan
# --8<-- [end:capacity_plan]


def spot_count(accelerators: int, spot_share: Fraction) -> int:
    """Accelerators rented on spot: rounded down, so the on-demand
    part never falls below what was asked of it."""
    return math.floor(accelerators * spot_share)


def monthly_cost(accelerators: int, on_demand_per_hour: float,
                 spot_per_hour: float,
                 spot_share: Fraction = Fraction(0)) -> float:
    """A month of `accelerators`, `spot_share` of them on spot."""
    spot = spot_count(accelerators, spot_share)
    hourly = ((accelerators - spot) * on_demand_per_hour
              + spot * spot_per_hour)
    return hourly * HOURS_PER_MONTH
