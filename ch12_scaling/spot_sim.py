"""`spot-sim`: a day on a fleet partly on spot GPUs, against on demand.

Chapter 12, "Cost optimization: spot and preemptible GPU instances".
The same day of traffic and the same stream-aware policy run twice:
every replica on demand, then with a share of them on spot. A spot
replica is preempted at random (a seeded rate per replica-hour); its
notice starts a replacement at once (the notice is a head start on the
cold start) and drains it (`preemption.py`): streams that end within
the notice finish, the rest are cut at the deadline and reconnect to
another warm replica, or wait for one to warm up if none is left.
The day is priced from `gpu_prices.toml`; a replica is one GPU with
chapter 6's measured capacity whatever the GPU (the sim prices the
hours, it does not size the GPU). Reported: cost per day, the saving,
and what it cost the streams: streams cut, minutes over 300 ms, and
seconds of reconnect gap.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ch12_scaling.autoscale_sim import (
    COLD_START_S,
    MAX_REPLICAS,
    MIN_REPLICAS,
    positive_float,
)
from ch12_scaling.autoscaling import Bounds, HysteresisPolicy, Reading
from ch12_scaling.fleet_sim import SimClock
from ch12_scaling.gpu_prices import (
    PRICES,
    GpuPrice,
    PriceFileError,
    load_prices,
)
from ch12_scaling.preemption import drain_plan
from ch12_scaling.replica_latency import (
    CH06_RESULTS,
    SLO_MS,
    LatencyModel,
    ResultsError,
    load_capacity,
)
from ch12_scaling.scaling_signals import stream_signal
from ch12_scaling.traffic import TrafficShape, day_of_traffic

# Assumptions, each a flag: spot GPUs are reclaimed far more often than
# the CPU-heavy averages of AWS's Spot Instance Advisor; one preemption
# per 50 replica-hours is a pessimistic default.
PREEMPTIONS_PER_HOUR = 0.02
MEAN_STREAM_S = 300.0  # a support call's length; exponential
SPOT_SHARE = 0.5
RECONNECT_S = 2.0  # client backoff, TLS and WebSocket handshakes, resume


@dataclass
class SpotReplica:
    spot: bool
    ready_at: float  # minute it is warm from
    gone_at: float = math.inf  # minute it is taken, once notified

    def serves(self, minute: float) -> bool:
        return self.ready_at <= minute < self.gone_at

    @property
    def draining(self) -> bool:
        return self.gone_at < math.inf


@dataclass
class SpotDay:
    """One day's account."""

    on_demand_hours: float = 0.0
    spot_hours: float = 0.0
    violation_minutes: int = 0
    preemptions: int = 0
    streams_cut: int = 0
    gaps_s: list[float] = field(default_factory=list)  # per stream cut

    def cost(self, price: GpuPrice) -> float:
        return (self.on_demand_hours * price.on_demand_per_gpu_hour
                + self.spot_hours * price.spot_per_gpu_hour)


@dataclass
class SpotFleet:
    spot_share: float
    cold_start_min: float
    replicas: list[SpotReplica] = field(default_factory=list)

    def serving(self) -> list[SpotReplica]:
        """Replicas not being drained: warm or starting."""
        return [r for r in self.replicas if not r.draining]

    def ready(self, minute: float) -> int:
        return sum(1 for r in self.replicas if r.serves(minute))

    def add(self, minute: float, warm: bool = False) -> None:
        """A new replica is spot while that keeps spot within share."""
        serving = self.serving()
        spots = sum(1 for r in serving if r.spot)
        spot = spots + 1 <= self.spot_share * (len(serving) + 1) + 1e-9
        start = -math.inf if warm else minute + self.cold_start_min
        self.replicas.append(SpotReplica(spot, start))

    def resize(self, desired: int, minute: float) -> None:
        serving = self.serving()
        for _ in range(desired - len(serving)):
            self.add(minute)
        # Fewer: the coldest go first, as in the on-demand fleet.
        for replica in sorted(serving, key=lambda r: r.ready_at,
                              reverse=True)[:max(0, len(serving)
                                                 - desired)]:
            self.replicas.remove(replica)


@dataclass(frozen=True)
class SpotSettings:
    provider: str = "aws"
    gpu: str = "L4"
    spot_share: float = SPOT_SHARE
    seed: int = 0
    preemptions_per_hour: float = PREEMPTIONS_PER_HOUR
    mean_stream_s: float = MEAN_STREAM_S
    cold_start_s: float = COLD_START_S
    prices: Path = PRICES
    results: Path = CH06_RESULTS


def preempt(fleet: SpotFleet, replica: SpotReplica, minute: int,
            per_ready: float, notice_s: float, mean_stream_s: float,
            rng: np.random.Generator, day: SpotDay) -> None:
    """A notice: drain the replica, start its replacement at once."""
    day.preemptions += 1
    streams = round(per_ready) if replica.serves(minute) else 0
    left_s = rng.exponential(mean_stream_s, streams).tolist()
    plan = drain_plan(left_s, notice_s)
    replica.gone_at = minute + plan.deadline_s / 60.0
    fleet.add(minute)
    others = [r for r in fleet.replicas if r is not replica]
    if any(r.serves(replica.gone_at) for r in others):
        gap = RECONNECT_S
    else:  # nobody warm: wait for the first replica to warm up
        first = min(r.ready_at for r in fleet.serving())
        gap = (first - replica.gone_at) * 60.0 + RECONNECT_S
    day.streams_cut += plan.reconnecting
    day.gaps_s += [gap] * plan.reconnecting


def simulate_day(settings: SpotSettings, spot_share: float,
                 model: LatencyModel, notice_s: float) -> SpotDay:
    traffic = day_of_traffic(TrafficShape(), settings.seed)
    streams_signal = stream_signal(model)
    clock = SimClock()
    bounds = Bounds(MIN_REPLICAS, MAX_REPLICAS)
    policy = HysteresisPolicy(streams_signal.hysteresis, bounds, clock)
    fleet = SpotFleet(spot_share, settings.cold_start_s / 60.0)
    for _ in range(bounds.clamp(math.ceil(traffic[0]
                                          / streams_signal.target))):
        fleet.add(0, warm=True)
    # Preemptions draw from their own stream: the traffic stays the
    # same day whatever the share.
    rng = np.random.default_rng([settings.seed, 1])
    hazard = settings.preemptions_per_hour / 60.0
    day = SpotDay()
    for minute, count in enumerate(traffic):
        fleet.replicas = [r for r in fleet.replicas if r.gone_at > minute]
        serving = fleet.serving()
        # Streams on a draining replica are about to move: the load is
        # all the streams, over the warm replicas that stay.
        warm = sum(1 for r in serving if r.ready_at <= minute)
        if minute:
            clock.now_s = minute * 60.0
            reading = Reading(traffic[minute - 1] / max(1, warm), warm,
                              len(serving))
            fleet.resize(policy.desired(reading), minute)
        per_ready = count / max(1, fleet.ready(minute))
        for replica in fleet.serving():
            if replica.spot and rng.random() < hazard:
                preempt(fleet, replica, minute, per_ready, notice_s,
                        settings.mean_stream_s, rng, day)
        ready = fleet.ready(minute)
        if not ready or model.p95_ms(count / ready) > SLO_MS:
            day.violation_minutes += 1
        spots = sum(1 for r in fleet.replicas if r.spot)
        day.spot_hours += spots / 60.0
        day.on_demand_hours += (len(fleet.replicas) - spots) / 60.0
    return day


def spot_figures(settings: SpotSettings = SpotSettings()
                 ) -> dict[str, object]:
    """The day all on demand and with the spot share, side by side."""
    book = load_prices(settings.prices)
    price = book.find(settings.provider, settings.gpu)
    notice_s = book.notice_s[settings.provider]
    model = LatencyModel(load_capacity(settings.results))
    on_demand = simulate_day(settings, 0.0, model, notice_s)
    spot = simulate_day(settings, settings.spot_share, model, notice_s)
    baseline = on_demand.cost(price)
    return {
        "spot_savings_pct": round(100 * (1 - spot.cost(price) / baseline),
                                  2),
        "on_demand_cost_per_day_usd": round(baseline, 2),
        "spot_cost_per_day_usd": round(spot.cost(price), 2),
        "spot_discount_pct": round(100 * price.spot_discount, 2),
        "spot_preemptions": spot.preemptions,
        "spot_streams_cut": spot.streams_cut,
        "spot_reconnect_gap_s_total": round(sum(spot.gaps_s), 1),
        "spot_reconnect_gap_s_max": round(max(spot.gaps_s, default=0.0),
                                          1),
        "spot_violation_minutes": spot.violation_minutes,
        "on_demand_violation_minutes": on_demand.violation_minutes,
        "spot_share": settings.spot_share,
        "provider": settings.provider,
        "gpu": settings.gpu,
        "notice_s": notice_s,
        "preemptions_per_spot_replica_hour": settings.preemptions_per_hour,
        "prices_read": price.date_read.isoformat(),
        "prices_estimated": list(price.estimated),
        "seed": settings.seed,
    }


def report(found: dict[str, object], price: GpuPrice,
           spot_share: float) -> str:
    rows = [
        ("", "all on demand", f"{spot_share:.0%} spot"),
        ("cost per day", f"${found['on_demand_cost_per_day_usd']}",
         f"${found['spot_cost_per_day_usd']}"),
        (f"minutes over {SLO_MS:g} ms",
         str(found["on_demand_violation_minutes"]),
         str(found["spot_violation_minutes"])),
        ("preemptions", "0", str(found["spot_preemptions"])),
        ("streams cut", "0", str(found["spot_streams_cut"])),
        ("reconnect gap, total s", "0",
         str(found["spot_reconnect_gap_s_total"])),
        ("reconnect gap, longest s", "0",
         str(found["spot_reconnect_gap_s_max"])),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    table = "\n".join(
        "  ".join((row[0].ljust(widths[0]), row[1].rjust(widths[1]),
                   row[2].rjust(widths[2]))) for row in rows)
    estimated = (f"; estimated: {', '.join(price.estimated)}"
                 if price.estimated else "")
    head = (
        f"{price.gpu} on {price.provider} ({price.instance},"
        f" {price.region}): ${price.on_demand_per_gpu_hour:g} on demand,"
        f" ${price.spot_per_gpu_hour:g} spot per GPU-hour (read"
        f" {price.date_read}{estimated}). Notice {found['notice_s']:g} s;"
        f" {found['preemptions_per_spot_replica_hour']:g} preemptions per"
        f" spot replica-hour; seed {found['seed']}.")
    return "\n".join([
        textwrap.fill(head, 79, break_long_words=False),
        "",
        table,
        "",
        f"Saving: {found['spot_savings_pct']}% of the on-demand day.",
    ])


def share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number"
                                         ) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not in [0, 1]")
    return value


def rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number"
                                         ) from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} cannot be negative")
    return value


def parse_args(argv: Sequence[str]) -> tuple[SpotSettings,
                                             argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m ch12_scaling spot-sim",
        description="Price a day on spot GPUs against its preemptions.")
    parser.add_argument("--provider", choices=("aws", "gcp"),
                        default="aws")
    parser.add_argument("--gpu", default="L4",
                        help="a GPU the price file lists (default L4)")
    parser.add_argument("--spot-share", type=share, default=SPOT_SHARE,
                        help="share of replicas on spot, 0 to 1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preemptions-per-hour", type=rate,
                        default=PREEMPTIONS_PER_HOUR,
                        help="per spot replica-hour")
    parser.add_argument("--mean-stream-s", type=positive_float,
                        default=MEAN_STREAM_S)
    parser.add_argument("--cold-start-s", type=positive_float,
                        default=COLD_START_S)
    parser.add_argument("--prices", type=Path, default=PRICES)
    parser.add_argument("--results", type=Path, default=CH06_RESULTS,
                        help="chapter 6's benchmark results")
    parser.add_argument("--json", type=Path, help="write the figures")
    args = parser.parse_args(argv)
    try:
        book = load_prices(args.prices)
    except PriceFileError as error:
        parser.error(f"--prices: {error}")
    if args.gpu not in book.gpus(args.provider):
        parser.error(f"--gpu: no price for {args.gpu!r} on"
                     f" {args.provider}; the file has"
                     f" {', '.join(book.gpus(args.provider))}")
    settings = SpotSettings(
        provider=args.provider, gpu=args.gpu, spot_share=args.spot_share,
        seed=args.seed, preemptions_per_hour=args.preemptions_per_hour,
        mean_stream_s=args.mean_stream_s, cold_start_s=args.cold_start_s,
        prices=args.prices, results=args.results)
    return settings, args


def main(argv: Sequence[str]) -> int:
    settings, args = parse_args(argv)
    try:
        found = spot_figures(settings)
    except ResultsError as error:
        print(f"--results: {error}", file=sys.stderr)
        return 2
    price = load_prices(settings.prices).find(settings.provider,
                                              settings.gpu)
    print(report(found, price, settings.spot_share))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(found, indent=2) + "\n",
                             encoding="utf-8")
    return 0
