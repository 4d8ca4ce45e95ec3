"""Benchmark of chapter 6: many real-time streams, one accelerator.

`python -m ch06_pipeline` runs as its own process, with the full mock
engine (the matcher batched across streams, in its worker process),
and the load generator (`examples.loadgen`) beside it on the same
machine ramps real-time fixture streams over WebSocket. Capacity is the
most concurrent streams whose p95 final latency after the end of speech
(endpointing silence excluded) stays within 300 ms, with none refused
or failed: found by doubling, then bisection to within 10%, with
degradation off (so every stream gets the full model), for the "eager"
and "tuned" accelerator profiles, batching on (256 a batch) and off (1).
Then, with degradation on and the stream cap at the measured capacity,
twice that load is offered: the admitted streams' p95 and the refused
share. Last, a five-minute soak at that capacity: the service's
resident memory at the end against one minute in. The matcher section
measures the mock's own CPU per stream-second, per stream and batched.
First, at 200 streams, the service's CPU per stream-second is split:
the serving path alone (no model), the mock matched per stream, and
batched, each for the whole service and for its event loop's process.
A percentile never reached is written -1. The plot of latency against
streams goes to build/ch06/latency.png.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from ch04_streaming.engine import load_lexicon
from ch05_protocols.service_process import process_cpu_s
from ch06_pipeline.matcher_cost import measure_matching_cost
from examples.fixtures import MANIFEST_PATH
from examples.loadgen_level import LevelResult, Target, run_level
from examples.loadgen_report import plot
from examples.service import Service, running_service, wait_until_ready

Figures = dict[str, float]
KEY = "bench-key"
ENV = {"SPEECH_API_KEYS": KEY, "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}
PLOT = Path(__file__).resolve().parent.parent / "build/ch06/latency.png"
DURATION_S = 20.0  # audio each stream sends per probe
RAMP_S = 5.0
SOAK_S = 300.0
SOAK_FROM_S = 60.0  # resident memory is compared from here on
MOST_STREAMS = 2400
PAGE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SPLIT_AT = 200  # streams, where the CPU is split by part


@dataclass(frozen=True)
class Probe:
    result: LevelResult
    server_cpu_s: float  # the service and its matcher worker
    main_cpu_s: float  # the service's own process: the event loop

    @property
    def streams(self) -> int:
        return self.result.streams

    @property
    def meets(self) -> bool:
        return self.result.meets()

    @property
    def server_cpu_ms_per_stream_s(self) -> float:
        return self._per_stream_s(self.server_cpu_s)

    @property
    def main_cpu_ms_per_stream_s(self) -> float:
        return self._per_stream_s(self.main_cpu_s)

    def _per_stream_s(self, cpu_s: float) -> float:
        stream_s = self.result.stream_s
        return cpu_s * 1000 / stream_s if stream_s else 0.0


def finite_ms(value: float | None) -> float:
    """A percentile as a figure: -1 when it was never reached (more
    than that share of utterances got no final)."""
    if value is None or math.isinf(value):
        return -1.0
    return round(value, 1)


def own_cpu_s(pid: int) -> float:
    """User and system time of `pid` alone, not of its children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its children (the matcher worker)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[21])
    return total * PAGE / 2**20


@asynccontextmanager
async def service(*flags: str, env: Mapping[str, str] | None = None
                  ) -> AsyncIterator[Service]:
    # One key for every stream of the load: its own cap out of the way.
    args = ("-m", "ch06_pipeline", "--port", "0", "--grpc-port", "0",
            "--max-streams-per-key", str(MOST_STREAMS), *flags)
    async with running_service(args, {**ENV, **(env or {})}) as running:
        await wait_until_ready(running.port)
        yield running


async def probe(running: Service, streams: int,
                duration_s: float = DURATION_S) -> Probe:
    target = Target(url=f"ws://127.0.0.1:{running.port}", api_key=KEY)
    cpu, main = process_cpu_s(running.pid), own_cpu_s(running.pid)
    result = await run_level(target, streams, duration_s, RAMP_S)
    probed = Probe(result, process_cpu_s(running.pid) - cpu,
                   own_cpu_s(running.pid) - main)
    show(probed)
    await asyncio.sleep(2.0)  # the last streams' sockets close
    return probed


def show(p: Probe) -> None:
    r = p.result
    print(f"    {r.streams:5d} streams: p95 final {r.final_p95_ms} ms,"
          f" admitted {r.admitted}, refused {r.rejected}, failed"
          f" {r.failed}, server {p.server_cpu_ms_per_stream_s:.2f} ms"
          " CPU per stream-second", flush=True)


async def capacity(running: Service, first: int
                   ) -> tuple[int, list[Probe]]:
    """Double from `first` until a probe misses, then bisect."""
    probes: list[Probe] = []
    good, bad = 0, MOST_STREAMS + 1
    streams = first
    while streams < bad and streams <= MOST_STREAMS:
        probes.append(await probe(running, streams))
        if probes[-1].meets:
            good = streams
            if bad > MOST_STREAMS:
                streams *= 2
                continue
        else:
            bad = streams
        if good and bad / good <= 1.1:
            break
        streams = (good + bad) // 2 if good else max(1, bad // 2)
        if streams in {p.streams for p in probes}:
            break
    return good, probes


async def capacities() -> tuple[Figures, list[Probe]]:
    figures: Figures = {}
    tuned_probes: list[Probe] = []
    for profile in ("eager", "tuned"):
        for batching, size, first in (("batching", "256", 50),
                                      ("no_batching", "1", 4)):
            print(f"  capacity, {profile} profile, {batching}", flush=True)
            async with service("--profile", profile, "--max-batch-size",
                               size, "--degradation", "off",
                               "--max-streams", str(MOST_STREAMS)
                               ) as running:
                found, probes = await capacity(running, first)
            figures[f"capacity_{batching}_{profile}"] = found
            if profile == "tuned" and batching == "batching":
                tuned_probes = probes
                at = [p for p in probes if p.streams == found]
                figures["server_cpu_ms_per_stream_s"] = round(
                    at[0].server_cpu_ms_per_stream_s if at else -1.0, 3)
    for profile in ("eager", "tuned"):
        gain = (figures[f"capacity_batching_{profile}"]
                / max(1.0, figures[f"capacity_no_batching_{profile}"]))
        figures[f"batching_gain_{profile}"] = round(gain, 2)
    figures["capacity_full_mock_tuned"] = figures["capacity_batching_tuned"]
    return figures, tuned_probes


async def overload(cap: int) -> Figures:
    """Twice the capacity offered, the cap at capacity, degrading on."""
    print(f"  twice the capacity offered: {2 * cap} streams", flush=True)
    async with service("--max-streams", str(cap)) as running:
        offered = await probe(running, 2 * cap)
    r = offered.result
    return {"p95_final_ms_at_2x_offered": finite_ms(r.final_p95_ms),
            "admitted_at_2x_offered": r.admitted,
            "refused_share_at_2x_offered": round(r.rejected / r.streams, 3),
            "failed_at_2x_offered": r.failed}


async def soak(streams: int) -> Figures:
    print(f"  soak: {streams} streams for {SOAK_S:g} s", flush=True)
    async with service("--max-streams", str(streams)) as running:
        samples: list[tuple[float, float]] = []
        sampling = asyncio.create_task(sample(running.pid, samples.append))
        soaked = await probe(running, streams, SOAK_S)
        sampling.cancel()
    after_warm = [mb for at, mb in samples if at >= SOAK_FROM_S]
    growth = (after_warm[-1] - after_warm[0]) / after_warm[0] * 100
    return {"rss_growth_pct_soak": round(growth, 2),
            "rss_mb_soak_end": round(after_warm[-1], 1),
            "p95_final_ms_soak": finite_ms(soaked.result.final_p95_ms)}


async def sample(pid: int, keep: Callable[[tuple[float, float]], None],
                 every_s: float = 5.0) -> None:
    start = time.monotonic()
    while True:
        keep((time.monotonic() - start, rss_mb(pid)))
        await asyncio.sleep(every_s)


async def cpu_split() -> Figures:
    """Where a stream-second's CPU goes, at SPLIT_AT streams: the
    serving path alone (no model), then the mock matched per stream
    and batched, each split into the event loop's process and all."""
    figures: Figures = {}
    variants = (("null", ()),
                ("per_stream", ("--matcher", "per-stream")),
                ("batched", ("--matcher", "batched")))
    for name, flags in variants:
        print(f"  CPU split at {SPLIT_AT} streams: {name}", flush=True)
        env = {"CH04_RECOGNIZER": "null"} if name == "null" else {}
        async with service("--degradation", "off",
                           *flags,
                           env=env) as running:
            probed = await probe(running, SPLIT_AT)
        suffix = f"{name}_at_{SPLIT_AT}"
        figures[f"server_cpu_ms_per_stream_s_{suffix}"] = round(
            probed.server_cpu_ms_per_stream_s, 3)
        figures[f"main_cpu_ms_per_stream_s_{suffix}"] = round(
            probed.main_cpu_ms_per_stream_s, 3)
        figures[f"loadgen_cpu_ms_per_stream_s_{suffix}"] = round(
            probed.result.cpu_ms_per_stream_s or -1.0, 3)
        if name != "null":
            figures[f"p95_final_ms_{suffix}"] = finite_ms(
                probed.result.final_p95_ms)
    return figures


def matcher_section(streams: int = 800) -> Figures:
    """The mock's matching alone, in this process: the least of three
    runs, per stream (chapter 4's worker) and batched (the bank)."""
    cost = measure_matching_cost(load_lexicon(MANIFEST_PATH), streams,
                                 repeats=3)
    return {"mock_cpu_ms_per_stream_s": round(cost.batched_ms, 3),
            "mock_cpu_ms_per_stream_s_per_stream": round(cost.per_stream_ms,
                                                         3),
            "mock_cpu_streams": streams}


async def benchmark() -> Figures:
    figures = await cpu_split()
    more, tuned = await capacities()
    figures |= more
    plot([p.result for p in tuned], PLOT)
    cap = int(figures["capacity_full_mock_tuned"])
    figures |= await overload(cap)
    figures |= await soak(cap)
    return figures


def run(sections: Sequence[str] = ("matcher", "service")) -> Figures:
    figures: Figures = {}
    if "matcher" in sections:
        figures |= matcher_section()
    if "service" in sections:
        figures |= asyncio.run(benchmark())
    return figures
