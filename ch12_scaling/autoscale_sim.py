"""`autoscale-sim`: a day of traffic through each autoscaling policy.

Chapter 12, "Auto-scaling for inference". The same days of streaming
traffic (diurnal curve, bursts, minute-to-minute noise) replay through
a policy on each signal (GPU utilisation, queue depth, p95 latency,
memory, streams per replica), each with hysteresis and without it (the
fleet sized to the target at every reading), and through a scheduled
floor under the stream-aware policy. Replicas pay chapter 3's cold
start before they serve; each minute's p95 comes from chapter 6's
measured capacity. Per policy, per day: minutes whose p95 final
latency is over 300 ms, replica-hours, scale actions, and flaps (an
action reversed by the next one within ten minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ch12_scaling.autoscaling import (
    Bounds,
    HourlyFloor,
    HysteresisPolicy,
    ProportionalPolicy,
    ScalingPolicy,
    ScheduledPolicy,
    floor_from_forecast,
)
from ch12_scaling.fleet_sim import DayResult, Fleet, SimClock, replay
from ch12_scaling.replica_latency import (
    CH06_RESULTS,
    SLO_MS,
    LatencyModel,
    ResultsError,
    load_capacity,
)
from ch12_scaling.scaling_actions import FLAP_WINDOW_MIN
from ch12_scaling.scaling_signals import Signal, signals, stream_signal
from ch12_scaling.traffic import TrafficShape, day_of_traffic, expected_streams

# Chapter 3's published anatomy (ch03_gpu/gpu_cold_start.py): AWS
# SageMaker, 2026-06, a 17.7 GB image: 525 s in all, 258 s with the
# image already on the node. A replica added to a running fleet lands
# on a node that has pulled the image before; a speech model's weights
# are smaller than that LLM's, so 258 s errs on the slow side. Use
# --cold-start-s 525 for a node that has to pull the image.
COLD_START_S = 258.0
DAYS = 7  # a week of days, one seed each; --quick replays one
RECOMMENDED = "streams_hysteresis"
SCHEDULED = "scheduled_streams_hysteresis"
MIN_REPLICAS = 2  # one replica lost must not take the service down
MAX_REPLICAS = 40


@dataclass(frozen=True)
class SimSettings:
    seed: int = 0
    days: int = DAYS
    cold_start_s: float = COLD_START_S
    min_replicas: int = MIN_REPLICAS
    max_replicas: int = MAX_REPLICAS
    results: Path = CH06_RESULTS
    shape: TrafficShape = field(default_factory=TrafficShape)


def policies(model: LatencyModel, bounds: Bounds, clock: SimClock,
             schedule: HourlyFloor) -> dict[str, tuple[Signal,
                                                       ScalingPolicy]]:
    """Every policy to compare, fresh (no state) for one day."""
    chosen: dict[str, tuple[Signal, ScalingPolicy]] = {}
    by_name = {signal.name: signal for signal in signals(model)}
    for name, signal in by_name.items():
        chosen[f"{name}_hysteresis"] = (signal, HysteresisPolicy(
            signal.hysteresis, bounds, clock))
        chosen[f"{name}_no_hysteresis"] = (signal, ProportionalPolicy(
            signal.target, bounds))
    streams = by_name["streams"]
    chosen[SCHEDULED] = (streams, ScheduledPolicy(
        schedule, HysteresisPolicy(streams.hysteresis, bounds, clock)))
    return chosen


def simulate(settings: SimSettings) -> tuple[dict[str, list[DayResult]],
                                             LatencyModel]:
    """Each policy's days, in order."""
    model = LatencyModel(load_capacity(settings.results))
    bounds = Bounds(settings.min_replicas, settings.max_replicas)
    per_replica = stream_signal(model).target  # streams at the target
    schedule = HourlyFloor(
        floor_from_forecast(list(expected_streams(settings.shape)),
                            per_replica), lead_s=settings.cold_start_s)
    days: dict[str, list[DayResult]] = {}
    for day in range(settings.days):
        traffic = day_of_traffic(settings.shape, settings.seed + day)
        initial = bounds.clamp(math.ceil(traffic[0] / per_replica))
        clock = SimClock()
        for name, (signal, policy) in policies(model, bounds, clock,
                                               schedule).items():
            fleet = Fleet.warm(initial, settings.cold_start_s / 60.0)
            days.setdefault(name, []).append(
                replay(traffic, policy, signal, model, fleet, clock))
    return days, model


def mean_per_day(days: dict[str, list[DayResult]],
                 figure: Callable[[DayResult], float]) -> dict[str, float]:
    """Each policy's figure, averaged over its days."""
    return {name: round(sum(figure(d) for d in results) / len(results), 2)
            for name, results in days.items()}


def figures(days: dict[str, list[DayResult]], model: LatencyModel,
            settings: SimSettings) -> dict[str, object]:
    """The figures a benchmark records, per day (mean over the days)."""
    flaps = mean_per_day(days, lambda d: d.flaps)
    return {
        "autoscale_violation_minutes_by_policy": mean_per_day(
            days, lambda d: d.violation_minutes),
        "replica_hours_by_policy": mean_per_day(
            days, lambda d: d.replica_hours),
        "scale_actions_by_policy": mean_per_day(
            days, lambda d: len(d.actions)),
        "flaps_per_day_by_policy": flaps,
        "streams_moved_by_policy": mean_per_day(
            days, lambda d: d.streams_moved),
        "flaps_per_day_with_and_without_hysteresis": {
            "with_hysteresis": flaps[RECOMMENDED],
            "without_hysteresis": flaps["streams_no_hysteresis"]},
        "autoscale_days": settings.days,
        "autoscale_seed": settings.seed,
        "cold_start_s": settings.cold_start_s,
        "capacity_streams_per_replica": model.capacity.streams,
        "flap_window_min": FLAP_WINDOW_MIN,
    }


def autoscale_figures(settings: SimSettings = SimSettings()
                      ) -> dict[str, object]:
    """For a benchmark: simulate, then the figures."""
    days, model = simulate(settings)
    return figures(days, model, settings)


def format_table(found: dict[str, object]) -> str:
    columns = (("SLO min", "autoscale_violation_minutes_by_policy"),
               ("replica-h", "replica_hours_by_policy"),
               ("actions", "scale_actions_by_policy"),
               ("flaps", "flaps_per_day_by_policy"),
               ("moved", "streams_moved_by_policy"))
    tables = [found[key] for _, key in columns]
    names = list(tables[0]) if isinstance(tables[0], dict) else []
    rows = [("policy", *(title for title, _ in columns))]
    for name in names:
        mark = " *" if name == RECOMMENDED else ""
        cells = [f"{t[name]:g}" if isinstance(t, dict) else "-"
                 for t in tables]
        rows.append((name + mark, *cells))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(row, widths,
                                                    strict=True)))
        for row in rows)


def report(found: dict[str, object], model: LatencyModel,
           shape: TrafficShape) -> str:
    head = (
        f"{found['autoscale_days']} day(s) of traffic, seed"
        f" {found['autoscale_seed']}: {shape.trough_streams:g} to"
        f" {shape.peak_streams:g} concurrent streams, {shape.bursts}"
        f" bursts a day. A replica carries {model.capacity.streams:g}"
        f" streams within {SLO_MS:g} ms p95 ({model.capacity.source});"
        f" cold start {found['cold_start_s']:g} s. Per day, mean over the"
        f" days. SLO min: minutes with p95 final over {SLO_MS:g} ms."
        " A flap: an action reversed by the next within"
        f" {found['flap_window_min']} min. Moved: streams on warm"
        " replicas removed. * recommended.")
    return "\n".join([textwrap.fill(head, 79, break_long_words=False),
                      "", format_table(found)])


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number"
                                         ) from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def parse_args(argv: Sequence[str]) -> tuple[SimSettings, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m ch12_scaling autoscale-sim",
        description="Replay days of streaming traffic through each"
                    " autoscaling policy.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=positive_int, default=DAYS,
                        help=f"days to replay (default {DAYS})")
    parser.add_argument("--quick", action="store_true",
                        help="one day only")
    parser.add_argument("--cold-start-s", type=positive_float,
                        default=COLD_START_S,
                        help="seconds from a replica asked for to warm"
                             f" (default {COLD_START_S:g}, chapter 3)")
    parser.add_argument("--min-replicas", type=positive_int,
                        default=MIN_REPLICAS)
    parser.add_argument("--max-replicas", type=positive_int,
                        default=MAX_REPLICAS)
    parser.add_argument("--results", type=Path, default=CH06_RESULTS,
                        help="chapter 6's benchmark results")
    parser.add_argument("--json", type=Path, help="write the figures")
    parser.add_argument("--plot", type=Path,
                        help="draw replicas and p95 over the first day")
    args = parser.parse_args(argv)
    if args.max_replicas < args.min_replicas:
        parser.error("--max-replicas must be at least --min-replicas")
    settings = SimSettings(
        seed=args.seed, days=1 if args.quick else args.days,
        cold_start_s=args.cold_start_s, min_replicas=args.min_replicas,
        max_replicas=args.max_replicas, results=args.results)
    return settings, args


def main(argv: Sequence[str]) -> int:
    settings, args = parse_args(argv)
    try:
        days, model = simulate(settings)
    except ResultsError as error:
        print(f"--results: {error}", file=sys.stderr)
        return 2
    found = figures(days, model, settings)
    print(report(found, model, settings.shape))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(found, indent=2) + "\n",
                             encoding="utf-8")
    if args.plot is not None:
        # matplotlib only when a plot is asked for: it takes a while.
        from ch12_scaling.autoscale_plot import plot_day
        target = stream_signal(model).target
        needed = day_of_traffic(settings.shape, settings.seed) / target
        plot_day({name: results[0] for name, results in days.items()},
                 list(needed), args.plot)
    return 0
