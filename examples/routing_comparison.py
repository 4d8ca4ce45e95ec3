"""`python -m examples.routing_comparison`: three routers, one skewed load.

Chapter 12, "Horizontal scaling: GPU-aware routing". Starts chapter
12's Serve fleet once per router (GPU-aware, Serve's power of two
choices, round robin) on the same mixed fleet (by default two replicas
of a faster accelerator and one of a slower), and offers each the same
seeded skewed load: streams arriving at random, most short and some
long, paced as live microphones, about as many at once as the fleet
can decode within the 300 ms rule. Chapter 6's degradation is off, so
an overloaded replica shows in its latency rather than in a cheaper
model's words. Reports, per router, the p95 and p99
final latency after the end of speech, the streams refused, and how
unevenly the streams sat on the replicas. It also times what the Serve
proxy adds: with one replica, half the streams go through the proxy
and half straight to the replica's pipeline, at the same time.

    python -m examples.routing_comparison [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ch04_streaming.client import DIALECTS
from ch12_scaling.gpu_router import STATS_PERIOD_S
from ch12_scaling.settings import ROUTERS
from examples.fleet_client import Fleet, running_fleet
from examples.loadgen_level import (
    DEV_KEY,
    LevelResult,
    Target,
    fixtures_of,
    scored,
)
from examples.loadgen_streams import Pacing, StreamRun, websocket_stream
from examples.loadgen_workload import Lap, Plan, cut

ENDPOINTING_S = 0.3
ENV = {"SPEECH_API_KEYS": DEV_KEY, "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}


@dataclass(frozen=True)
class SkewedLoad:
    """Streams arriving at random over `window_s`, most `short_s`
    long, a `long_share` of them `long_s` long: long streams stay
    placed where they landed while the short ones come and go."""

    arrivals: int = 80
    window_s: float = 60.0
    long_share: float = 0.3
    long_s: float = 60.0
    short_s: float = 6.0
    seed: int = 12

    def schedule(self) -> list[tuple[float, float]]:
        """(start offset, duration) of each stream, seeded."""
        rng = random.Random(self.seed)
        starts = sorted(rng.uniform(0, self.window_s)
                        for _ in range(self.arrivals))
        return [(start, self.long_s if rng.random() < self.long_share
                 else self.short_s) for start in starts]

    @property
    def mean_concurrency(self) -> float:
        mean_s = (self.long_share * self.long_s
                  + (1 - self.long_share) * self.short_s)
        return self.arrivals / self.window_s * mean_s


QUICK = SkewedLoad(arrivals=36, window_s=20.0, long_s=20.0)


@dataclass(frozen=True)
class RouterResult:
    router: str
    streams: int
    rejected: int
    failed: int
    final_p50_ms: float | None
    final_p95_ms: float | None
    final_p99_ms: float | None
    streams_by_replica: dict[str, int]


async def offer(target: Target, load: SkewedLoad, laps: Sequence[Lap]
                ) -> list[StreamRun]:
    """Every stream of `load`, each at its time, paced as speech."""
    dialect = DIALECTS[target.dialect]
    pacing = Pacing(1.0, drain_s=5.0)
    loop = asyncio.get_running_loop()
    begin = loop.time()

    async def one(i: int, start_s: float, duration_s: float) -> StreamRun:
        await asyncio.sleep(max(0.0, begin + start_s - loop.time()))
        lap = laps[i % len(laps)]
        chunks = max(1, round(duration_s / lap.chunk_s))
        plan = Plan(lap, lap.starts[0], chunks)
        return await websocket_stream(target.url, dialect,
                                      target.api_key, plan, pacing)

    return list(await asyncio.gather(*(
        one(i, start, duration)
        for i, (start, duration) in enumerate(load.schedule()))))


def open_streams(port: int) -> int:
    """`speech_active_streams`, summed, from a pipeline's /metrics."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return int(sum(sample.value
                   for family in text_string_to_metric_families(text)
                   if family.name == "speech_active_streams"
                   for sample in family.samples))


async def placements(fleet: Fleet) -> dict[str, int]:
    """Streams open on each replica now, from each one's pipeline."""
    return {name: await asyncio.to_thread(open_streams,
                                          record["pipeline_port"])
            for name, record in fleet.records().items()}


async def compare_router(router: str, load: SkewedLoad, costs: str,
                         replicas: int) -> RouterResult:
    laps = [cut(f) for f in fixtures_of()]
    # Chapter 6's degradation off: it would hide an overloaded replica
    # behind its cheaper model, and routing is the question.
    async with running_fleet(
            "--replicas", str(replicas), "--router", router,
            "--audio-cost-ms", costs, replicas=replicas,
            env={**ENV, "CH06_DEGRADATION": "off"}) as fleet:
        target = Target(url=fleet.url)
        await asyncio.sleep(STATS_PERIOD_S)  # a report reaches the router
        streams = asyncio.create_task(offer(target, load, laps))
        peak: dict[str, int] = {}
        while not streams.done():
            await asyncio.sleep(1.0)
            now = await placements(fleet)
            if sum(now.values()) > sum(peak.values()):
                peak = now
        runs = await streams
    level = scored(target, runs, load.window_s, 0.0, ENDPOINTING_S,
                   router, 0.0, 0.0)
    return summarise(router, level, peak)


def summarise(router: str, level: LevelResult,
              peak: dict[str, int]) -> RouterResult:
    return RouterResult(
        router=router, streams=level.streams, rejected=level.rejected,
        failed=level.failed, final_p50_ms=level.final_p50_ms,
        final_p95_ms=level.final_p95_ms, final_p99_ms=level.final_p99_ms,
        streams_by_replica=dict(sorted(peak.items())))


@dataclass(frozen=True)
class ProxyCost:
    streams: int  # each way, at once
    proxied_p50_ms: float
    proxied_p99_ms: float
    direct_p50_ms: float
    direct_p99_ms: float

    @property
    def added_p99_ms(self) -> float:
        return self.proxied_p99_ms - self.direct_p99_ms


async def proxy_cost(streams: int = 6, duration_s: float = 30.0
                     ) -> ProxyCost:
    """One replica; `streams` streams through the Serve proxy and as
    many straight to the replica's pipeline, side by side, so both
    halves meet the same device and the same machine."""
    laps = [cut(f) for f in fixtures_of()]
    load = SkewedLoad(arrivals=streams, window_s=1.0, long_share=1.0,
                      long_s=duration_s)
    async with running_fleet("--replicas", "1", replicas=1,
                             env=ENV) as fleet:
        (record,) = fleet.records().values()
        proxied = Target(url=fleet.url)
        direct = Target(url=f"ws://127.0.0.1:{record['pipeline_port']}")
        through, past = await asyncio.gather(
            offer(proxied, load, laps), offer(direct, load, laps))
    a = scored(proxied, through, duration_s, 0.0, ENDPOINTING_S, "proxied",
               0.0, 0.0)
    b = scored(direct, past, duration_s, 0.0, ENDPOINTING_S, "direct",
               0.0, 0.0)
    assert a.final_p99_ms is not None and b.final_p99_ms is not None
    assert a.final_p50_ms is not None and b.final_p50_ms is not None
    return ProxyCost(streams, a.final_p50_ms, a.final_p99_ms,
                     b.final_p50_ms, b.final_p99_ms)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(results: Sequence[RouterResult]) -> str:
    rows = [("router", "streams", "refused", "p50 ms", "p95 ms",
             "p99 ms", "streams per replica at the peak")]
    for r in results:
        rows.append((r.router, str(r.streams), str(r.rejected),
                     ms(r.final_p50_ms), ms(r.final_p95_ms),
                     ms(r.final_p99_ms),
                     " / ".join(map(str, r.streams_by_replica.values()))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in
                               zip(row, widths, strict=True)).rstrip()
                     for row in rows)


async def run(load: SkewedLoad, costs: str, replicas: int,
              routers: Sequence[str]) -> list[RouterResult]:
    return [await compare_router(router, load, costs, replicas)
            for router in routers]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.routing_comparison",
        description="Chapter 12: three request routers, one skewed load.")
    parser.add_argument("--quick", action="store_true",
                        help="a shorter load (for the tour)")
    parser.add_argument("--routers", default=",".join(ROUTERS))
    parser.add_argument("--audio-cost-ms", default="60,60,120",
                        help="the fleet's accelerators, one per replica")
    parser.add_argument("--json", type=Path, help="write results here")
    args = parser.parse_args(argv)
    routers = args.routers.split(",")
    unknown = [r for r in routers if r not in ROUTERS]
    if unknown:
        parser.error(f"--routers: unknown {', '.join(unknown)}")
    load = QUICK if args.quick else SkewedLoad()
    replicas = len(args.audio_cost_ms.split(","))
    print(f"{load.arrivals} streams over {load.window_s:g} s, "
          f"{load.long_share:.0%} of them {load.long_s:g} s long, the "
          f"rest {load.short_s:g} s: about {load.mean_concurrency:.0f} "
          f"at once, on {replicas} replicas ({args.audio_cost_ms} ms"
          " of device per audio second)", flush=True)
    results = asyncio.run(run(load, args.audio_cost_ms, replicas,
                              routers))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results],
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
