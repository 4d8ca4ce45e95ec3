"""Binary WebSocket, base64 WebSocket and gRPC, measured side by side.

Chapter 5, "Production reality: WebSocket dominates, gRPC for Google's
ecosystem". The conversation fixture, in 100 ms chunks of 16 kHz
linear16, to each transport's service in its own process, the mock
engine at model time zero so the transport is what differs. For each:
the bytes on the wire per second of audio, each way, counted by a relay
on the socket (`byte_relay.py`); CPU seconds per audio second, server
and client, one stream as fast as it goes; chunk-to-result latency with
N streams at the pace of speech; and the most streams whose p99 stays
within 100 ms, on a grid refined by bisection.

    python -m ch05_protocols.compare [--grid 25,100,200,400]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ch05_protocols.byte_relay import ByteRelay
from ch05_protocols.service_process import running
from ch05_protocols.stream_load import (
    Workload,
    run_load,
    send_all,
    workload,
)
from ch05_protocols.transports import TRANSPORTS, Link, open_link

KEY = "compare-key"
P99_TARGET_MS = 100.0
GRID = (25, 100, 200, 400)
ENGINE = {"profile": "zero", "recognizer": "mock", "load_s": "0",
          "warmup_s": "0", "max_streams": "5000",
          "max_streams_per_key": "5000", "idle_timeout_s": "120"}


def service_args(transport: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a transport's service."""
    env = {"SPEECH_API_KEYS": KEY}
    if transport == "grpc":  # chapter 4's engine settings, by variable
        env |= {f"CH04_{k.upper()}": v for k, v in ENGINE.items()}
        return ["grpc", "--port", "0", "--max-streams", "5000"], env
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in ENGINE.items()]
    return ["ws", "--port", "0", *flags], env


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass(frozen=True)
class OneStream:
    """One stream of the whole fixture, as fast as it goes."""

    up_bytes_per_audio_s: float  # counted on the socket
    down_bytes_per_audio_s: float
    wall_s_per_audio_s: float
    server_cpu_s_per_audio_s: float
    client_cpu_s_per_audio_s: float


@dataclass(frozen=True)
class Loaded:
    streams: int
    p50_ms: float
    p99_ms: float  # unanswered chunks included, at their wait
    failed_streams: int
    unanswered_chunks: int
    server_cpu_s_per_audio_s: float
    client_cpu_s_per_audio_s: float

    @property
    def passes(self) -> bool:
        return self.p99_ms <= P99_TARGET_MS and self.failed_streams == 0


@dataclass
class Compared:
    transport: str
    one_stream: OneStream
    loads: dict[int, Loaded] = field(default_factory=dict)
    capacity: int = 0


async def one_stream(transport: str, load: Workload) -> OneStream:
    args, env = service_args(transport)
    async with running(args, env) as service:
        relay = ByteRelay(service.port)
        await relay.start()
        try:  # once through the relay, for the bytes
            link = await open_link(transport, relay.port, KEY)
            await send_all(link, load.chunks)
            await link.close()
        finally:
            await relay.stop()
        # Once direct, for time and CPU, without the relay's share.
        cpu0, own0, wall0 = service.cpu_s(), own_cpu_s(), time.monotonic()
        link = await open_link(transport, service.port, KEY)
        await send_all(link, load.chunks)
        await link.close()
        wall = time.monotonic() - wall0
        cpu, own = service.cpu_s() - cpu0, own_cpu_s() - own0
    audio_s = load.audio_s
    return OneStream(
        round(relay.counted.up / audio_s),
        round(relay.counted.down / audio_s),
        round(wall / audio_s, 5), round(cpu / audio_s, 5),
        round(own / audio_s, 5))


async def loaded(transport: str, streams: int, load: Workload,
                 warmup_s: float, measure_s: float) -> Loaded:
    args, env = service_args(transport)
    async with running(args, env) as service:

        async def link() -> Link:
            return await open_link(transport, service.port, KEY)

        cpu0, own0 = service.cpu_s(), own_cpu_s()
        logs = await run_load(link, load, streams, warmup_s, measure_s)
        cpu, own = service.cpu_s() - cpu0, own_cpu_s() - own0
    latencies = [t * 1000 for log in logs for t in log.latencies_s]
    # Audio streamed, roughly: every stream, for the whole run.
    audio_s = streams * (warmup_s + measure_s)
    return Loaded(
        streams, round(statistics.median(latencies), 2),
        round(percentile(latencies, 0.99), 2),
        sum(1 for log in logs if log.failed),
        sum(log.unanswered for log in logs),
        round(cpu / audio_s, 5), round(own / audio_s, 5))


async def capacity(transport: str, load: Workload, grid: Sequence[int],
                   bisections: int, warmup_s: float, measure_s: float,
                   report: Callable[[str, Loaded], None]
                   ) -> tuple[int, dict[int, Loaded]]:
    """The largest N on the grid whose p99 is within target, then up
    to `bisections` halvings towards the first N that misses."""
    results: dict[int, Loaded] = {}
    for n in grid:
        results[n] = await loaded(transport, n, load, warmup_s, measure_s)
        report(transport, results[n])
        if not results[n].passes:
            break  # more streams will not do better
    good = max((n for n, m in results.items() if m.passes), default=0)
    bad = min((n for n, m in results.items() if not m.passes),
              default=None)
    for _ in range(bisections):
        if bad is None or bad - good <= 1:
            break
        middle = (good + bad) // 2
        m = await loaded(transport, middle, load, warmup_s, measure_s)
        report(transport, m)
        results[middle] = m
        good, bad = (middle, bad) if m.passes else (good, middle)
    return good, results


async def compare(grid: Sequence[int] = GRID, bisections: int = 2,
                  warmup_s: float = 3.0, measure_s: float = 10.0,
                  audio_s: float | None = None,
                  transports: Sequence[str] = TRANSPORTS,
                  report: Callable[[str, Loaded], None] = lambda t, m: None,
                  ) -> list[Compared]:
    load = workload()
    if audio_s is not None:  # the one-stream runs on less audio
        load = Workload(load.chunks[:round(audio_s * 10)], load.timed,
                        load.starts)
    results = []
    for transport in transports:
        compared = Compared(transport, await one_stream(transport, load))
        compared.capacity, compared.loads = await capacity(
            transport, workload(), grid, bisections, warmup_s, measure_s,
            report)
        results.append(compared)
    return results


def figures(results: Sequence[Compared]) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in results:
        t, one = c.transport, c.one_stream
        out[f"wire_bytes_per_audio_s_{t}"] = one.up_bytes_per_audio_s
        out[f"wire_bytes_down_per_audio_s_{t}"] = one.down_bytes_per_audio_s
        out[f"fast_wall_s_per_audio_s_{t}"] = one.wall_s_per_audio_s
        out[f"fast_server_cpu_s_per_audio_s_{t}"] = (
            one.server_cpu_s_per_audio_s)
        out[f"fast_client_cpu_s_per_audio_s_{t}"] = (
            one.client_cpu_s_per_audio_s)
        out[f"capacity_streams_{t}"] = c.capacity
        for n, m in sorted(c.loads.items()):
            out[f"p50_ms_{t}_at_{n}"] = m.p50_ms
            out[f"p99_ms_{t}_at_{n}"] = m.p99_ms
            out[f"server_cpu_s_per_audio_s_{t}_at_{n}"] = (
                m.server_cpu_s_per_audio_s)
            out[f"client_cpu_s_per_audio_s_{t}_at_{n}"] = (
                m.client_cpu_s_per_audio_s)
            out[f"unanswered_chunks_{t}_at_{n}"] = m.unanswered_chunks
    return out


def table(results: Sequence[Compared]) -> str:
    rows = [("transport", "up B/s", "down B/s", "fast s/s",
             "server CPU s/s", "client CPU s/s", "capacity")]
    for c in results:
        one = c.one_stream
        rows.append((c.transport, f"{one.up_bytes_per_audio_s:,.0f}",
                     f"{one.down_bytes_per_audio_s:,.0f}",
                     f"{one.wall_s_per_audio_s:.4f}",
                     f"{one.server_cpu_s_per_audio_s:.4f}",
                     f"{one.client_cpu_s_per_audio_s:.4f}",
                     str(c.capacity)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w
                               in zip(row, widths, strict=True))
                     for row in rows)


def plot(results: Sequence[Compared], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [c.transport.replace("_", " ") for c in results]
    fig, (wire, streams) = plt.subplots(1, 2, figsize=(9, 3.5))
    wire.bar(names, [c.one_stream.up_bytes_per_audio_s for c in results])
    wire.set_title("bytes on the wire per audio second (up)")
    streams.bar(names, [c.capacity for c in results])
    streams.set_title(f"streams at p99 <= {P99_TARGET_MS:.0f} ms")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def show(transport: str, m: Loaded) -> None:
    print(f"  {transport:<9} N={m.streams:>4}  p50 {m.p50_ms:7.1f} ms"
          f"  p99 {m.p99_ms:7.1f} ms  failed {m.failed_streams}"
          f"  unanswered {m.unanswered_chunks}"
          f"  server CPU {m.server_cpu_s_per_audio_s:.4f} s/s", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch05_protocols.compare",
        description="Binary WebSocket, base64 WebSocket and gRPC,"
        " measured on the same audio.")
    parser.add_argument("--grid", default=",".join(map(str, GRID)),
                        help="stream counts to try (default %(default)s)")
    parser.add_argument("--bisections", type=int, default=2)
    parser.add_argument("--measure-s", type=float, default=10.0)
    parser.add_argument("--plot", type=Path,
                        default=Path("build/ch05/compare.png"))
    args = parser.parse_args(argv)
    grid = [int(n) for n in args.grid.split(",")]
    results = asyncio.run(compare(grid, args.bisections,
                                  measure_s=args.measure_s, report=show))
    print(table(results))
    plot(results, args.plot)
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
