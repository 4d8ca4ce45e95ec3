"""Benchmark of chapter 12: routers on live replicas, the proxy, the
autoscalers' day and the spot day.

Three request routers on the same live Serve fleet (two faster
accelerators, one slower) under the same seeded skewed load, then what
the Serve proxy adds to a final, timed against streams sent straight to
the replica's pipeline at the same time; then the autoscaling policies
over simulated days, and a day on spot capacity with its preemptions.
Figures that are groups (one per policy) are kept as groups.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from ch12_scaling.autoscale_sim import SimSettings, autoscale_figures
from ch12_scaling.settings import ROUTERS
from ch12_scaling.spot_sim import SpotSettings, spot_figures
from examples.routing_comparison import SkewedLoad, proxy_cost
from examples.routing_comparison import run as compare_routers

FLEET = "60,60,120"  # ms of device per audio second, one per replica


def numeric(found: Mapping[str, object]) -> dict[str, object]:
    """The figures that are numbers, or groups of numbers."""
    kept: dict[str, object] = {}
    for name, value in found.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            kept[name] = value
        elif isinstance(value, Mapping) and all(
                isinstance(v, int | float) for v in value.values()):
            kept[name] = dict(value)
    return kept


def run_bench() -> dict[str, object]:
    routers = asyncio.run(compare_routers(SkewedLoad(), FLEET, 3, ROUTERS))
    figures: dict[str, object] = {}
    for result in routers:
        slug = result.router.replace("-", "_")
        figures[f"routing_p95_ms_{slug}"] = result.final_p95_ms or 0.0
        figures[f"routing_p99_ms_{slug}"] = result.final_p99_ms or 0.0
        figures[f"routing_refused_{slug}"] = result.rejected
        figures[f"routing_failed_{slug}"] = result.failed
        figures[f"routing_peak_streams_{slug}"] = {
            f"replica_{i + 1}": n for i, n in enumerate(
                sorted(result.streams_by_replica.values(), reverse=True))}
    figures["routing_streams"] = routers[0].streams
    cost = asyncio.run(proxy_cost())
    figures.update(
        serve_proxy_added_p99_ms=round(cost.added_p99_ms, 1),
        serve_proxy_p99_ms_proxied=round(cost.proxied_p99_ms, 1),
        serve_proxy_p99_ms_direct=round(cost.direct_p99_ms, 1),
        serve_proxy_p50_ms_proxied=round(cost.proxied_p50_ms, 1),
        serve_proxy_p50_ms_direct=round(cost.direct_p50_ms, 1))
    figures.update(numeric(autoscale_figures(SimSettings())))
    figures.update(numeric(spot_figures(SpotSettings())))
    return figures


def run() -> dict[str, object]:
    return run_bench()
