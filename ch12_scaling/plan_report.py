"""The fleet plan for each accelerator, as a table or as JSON.

Chapter 12, "Capacity planning for inference workloads" and "Cost
optimization". For every accelerator of chapter 3's catalogue, the
replicas each region needs for the peak (`capacity.capacity_plan`),
their total and their monthly cost, on demand and with a share on
spot, with the date each price was read; the cheapest is marked. With
failover, each row also says what it adds over the same plan without
it. Every region is priced from the catalogue's one price list.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ch03_gpu.sizing import Catalogue, Offer
from ch12_scaling.capacity import HOURS_PER_MONTH, capacity_plan, monthly_cost
from ch12_scaling.replica_capacity import (
    PRECISION,
    MeasuredCapacity,
    streams_per_replica,
    why_no_stream,
)


@dataclass(frozen=True)
class PlanRequest:
    """What the fleet must carry, and how safely."""

    peak_streams: int
    target_ms: float
    shares: Mapping[str, Fraction]
    headroom: Fraction
    spares: int  # per region
    failover: bool
    spot_share: Fraction | None


@dataclass(frozen=True)
class AcceleratorPlan:
    offer: Offer
    per_replica: int
    replicas: Mapping[str, int]
    replicas_without_failover: Mapping[str, int]
    spot_share: Fraction | None

    @property
    def total(self) -> int:
        return sum(self.replicas.values())

    @property
    def failover_adds(self) -> int:
        return self.total - sum(self.replicas_without_failover.values())

    @property
    def on_demand_monthly(self) -> float:
        return self.monthly(self.total, Fraction(0))

    @property
    def spot_monthly(self) -> float | None:
        if self.spot_share is None:
            return None
        return self.monthly(self.total, self.spot_share)

    @property
    def quoted_monthly(self) -> float:
        """The cost the plan is chosen by: with spot, if asked."""
        spot = self.spot_monthly
        return self.on_demand_monthly if spot is None else spot

    @property
    def failover_adds_monthly(self) -> float:
        without = sum(self.replicas_without_failover.values())
        return self.quoted_monthly - self.monthly(
            without, self.spot_share or Fraction(0))

    def monthly(self, accelerators: int, spot_share: Fraction) -> float:
        return monthly_cost(accelerators, self.offer.on_demand_per_hour,
                            self.offer.spot_per_hour, spot_share)


@dataclass(frozen=True)
class Unfit:
    offer: Offer
    reason: str


@dataclass(frozen=True)
class FleetPlan:
    request: PlanRequest
    capacity: MeasuredCapacity
    reference: str
    plans: Sequence[AcceleratorPlan]
    unfit: Sequence[Unfit]
    catalogue_path: str

    @property
    def cheapest(self) -> AcceleratorPlan | None:
        return min(self.plans, default=None,
                   key=lambda p: (p.quoted_monthly, p.offer.name))


def plan_fleet(request: PlanRequest, measured: MeasuredCapacity,
               catalogue: Catalogue, offers: Sequence[Offer],
               catalogue_path: str) -> FleetPlan:
    """Size the fleet on each of `offers`."""
    plans, unfit = [], []
    for offer in offers:
        per_replica = streams_per_replica(measured.streams, catalogue,
                                          offer)
        if per_replica < 1:
            unfit.append(Unfit(offer, why_no_stream(offer)))
            continue
        sizing = (request.peak_streams, per_replica, request.shares,
                  request.headroom, request.spares)
        plans.append(AcceleratorPlan(
            offer, per_replica, capacity_plan(*sizing, request.failover),
            capacity_plan(*sizing, False), request.spot_share))
    return FleetPlan(request, measured, catalogue.reference, plans, unfit,
                     catalogue_path)


def percent(share: Fraction) -> str:
    return f"{float(share) * 100:.4g}%"


def dollars(amount: float) -> str:
    return f"${amount:,.0f}"


def redundancy(spares: int) -> str:
    return "n" if spares == 0 else f"n+{spares}"


def heading(fleet: FleetPlan) -> str:
    r, m = fleet.request, fleet.capacity
    regions = ", ".join(f"{name} {percent(share)}"
                        for name, share in r.shares.items())
    safety = (f"headroom {percent(r.headroom)}, {redundancy(r.spares)}"
              " in each region")
    if r.failover:
        safety += ", each region able to take in a lost one's users"
    bound = "at least " if m.at_least else ""
    return (
        f"Peak {r.peak_streams:,} streams, p95 final within"
        f" {r.target_ms:g} ms; {regions}; {safety}. One replica on the"
        f" {fleet.reference}: {bound}{m.streams:,} streams ({m.method})."
        f" {m.provenance} Other accelerators scaled from it by"
        f" {PRECISION} tensor-core throughput, as chapter 3 does.")


def table(fleet: FleetPlan) -> str:
    r = fleet.request
    cheapest = fleet.cheapest
    header = ["accelerator", "per replica", *r.shares, "total",
              "$/month"]
    if r.spot_share is not None:
        header.append(f"$/month {percent(r.spot_share)} spot")
    if r.failover:
        header.append("failover adds")
    header += ["prices read", ""]
    rows = [header]
    for p in fleet.plans:
        row = [p.offer.name, f"{p.per_replica:,}",
               *(str(p.replicas[region]) for region in r.shares),
               str(p.total), dollars(p.on_demand_monthly)]
        if p.spot_monthly is not None:
            row.append(dollars(p.spot_monthly))
        if r.failover:
            row.append(f"+{p.failover_adds}"
                       f" ({dollars(p.failover_adds_monthly)})")
        row += [p.offer.prices_read, "* cheapest" if p is cheapest else ""]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(
        cell.ljust(width) if i == 0 else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(row, widths, strict=True))
    ).rstrip() for row in rows)


def legend(fleet: FleetPlan) -> list[str]:
    r = fleet.request
    lines = [
        "per replica: streams within the target before headroom."
        f" Regions: replicas, spares included. $/month: {HOURS_PER_MONTH}"
        " hours at the on-demand price, every region at the catalogue's"
        f" ({fleet.catalogue_path})."]
    if r.spot_share is not None:
        lines.append(
            f"With spot: {percent(r.spot_share)} of the accelerators,"
            " rounded down, at each one's spot discount, the rest on"
            " demand; the cheapest is chosen at this cost.")
    if r.failover:
        lines.append(
            "failover adds: accelerators and $/month over the same plan"
            " without failover" + (", with spot" if r.spot_share
                                   is not None else "") + ".")
    cheapest = fleet.cheapest
    if r.failover and cheapest is not None:
        before = cheapest.total - cheapest.failover_adds
        lines.append(
            f"Failover costs the cheapest, {cheapest.offer.name},"
            f" {cheapest.total} accelerators instead of {before}"
            f" (+{cheapest.failover_adds / before:.0%}),"
            f" {dollars(cheapest.failover_adds_monthly)} a month more:"
            " every region sized for its own users and the largest"
            " other region's.")
    estimated = [p.offer.name for p in fleet.plans
                 if p.offer.spot_source == "estimate"]
    if r.spot_share is not None and estimated:
        lines.append(f"Spot discounts estimated for {', '.join(estimated)}:"
                     " check your region's spot price history.")
    lines += [f"{u.offer.name}: {u.reason}." for u in fleet.unfit]
    return lines


def format_text(fleet: FleetPlan) -> str:
    parts = [textwrap.fill(heading(fleet), 72, break_long_words=False,
                           break_on_hyphens=False), table(fleet)]
    parts += [textwrap.fill(line, 72, break_long_words=False,
                            break_on_hyphens=False)
              for line in legend(fleet)]
    return "\n\n".join(parts) + "\n"


def plan_json(p: AcceleratorPlan, cheapest: bool,
              failover: bool) -> dict[str, Any]:
    return {
        "name": p.offer.name, "instance": p.offer.instance,
        "streams_per_replica": p.per_replica,
        "replicas": dict(p.replicas), "total": p.total,
        "monthly_on_demand": round(p.on_demand_monthly, 2),
        "monthly_with_spot": (None if p.spot_monthly is None
                              else round(p.spot_monthly, 2)),
        "failover_adds": None if not failover else {
            "accelerators": p.failover_adds,
            "monthly": round(p.failover_adds_monthly, 2)},
        "on_demand_per_hour": p.offer.on_demand_per_hour,
        "spot_per_hour": round(p.offer.spot_per_hour, 4),
        "prices_read": p.offer.prices_read, "source": p.offer.source,
        "spot_source": p.offer.spot_source, "cheapest": cheapest,
    }


def format_json(fleet: FleetPlan) -> str:
    r, m, cheapest = fleet.request, fleet.capacity, fleet.cheapest
    document = {
        "peak_streams": r.peak_streams, "p95_ms": r.target_ms,
        "shares": {name: float(s) for name, s in r.shares.items()},
        "headroom": float(r.headroom), "redundancy": redundancy(r.spares),
        "failover": r.failover,
        "spot_share": None if r.spot_share is None else float(r.spot_share),
        "hours_per_month": HOURS_PER_MONTH,
        "capacity": {"accelerator": fleet.reference, "streams": m.streams,
                     "at_least": m.at_least, "method": m.method,
                     "measured": m.provenance},
        "catalogue": fleet.catalogue_path,
        "accelerators": [plan_json(p, p is cheapest, r.failover)
                         for p in fleet.plans],
        "cheapest": None if cheapest is None else cheapest.offer.name,
        "unfit": [{"name": u.offer.name, "reason": u.reason}
                  for u in fleet.unfit],
    }
    return json.dumps(document, indent=2) + "\n"
