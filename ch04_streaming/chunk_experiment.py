"""Chunk size, measured: latency against messages and bytes per second.

Chapter 4, "Chunk size selection". Streams a fixture at real-time pace,
as a live microphone would, with 20, 50, 100, 200 and 250 ms chunks to a
server started in this process (or to `--url`), one size after another,
and prints for each: time to first result and final latency (p50 and
p95 over the fixture's utterances), and messages and bytes per second
each way. Latency runs from when the audio was spoken, so a chunk's
fill time counts: a word that starts early in a 250 ms chunk waits for
the rest of the chunk to be captured before it can even be sent. Word
times are the service's own (on the fixtures, within 50 ms of the
truth). Bytes are WebSocket message payloads; the frame headers each
way (RFC 6455: 2 to 14 bytes a frame) are shown apart, and TCP/IP adds
about 52 bytes a packet on top. Bigger chunks mean fewer messages and
later results: the tradeoff the chapter weighs. `--plot` draws it.

    python -m ch04_streaming.chunk_experiment [--fixture support_call] \\
        [--plot build/chunk_experiment.png]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import secrets
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from ch04_streaming.app import build_server
from ch04_streaming.auth import ApiKeys
from ch04_streaming.client import DIALECTS, ClientAudio, load_audio, stream
from ch04_streaming.settings import DEFAULT_MANIFEST, parse_settings

CHUNK_SIZES_MS = (20, 50, 100, 200, 250)
DEFAULT_PLOT = Path("build") / "chunk_experiment.png"


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by nearest rank: always a value that was seen."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class Row:
    chunk_ms: int
    sent_per_s: float
    received_per_s: float
    sent_bytes_per_s: float  # message payloads
    received_bytes_per_s: float
    sent_framing_per_s: float  # WebSocket frame headers
    received_framing_per_s: float
    first_result_ms: tuple[float | None, float | None]  # p50, p95
    final_latency_ms: tuple[float | None, float | None]
    utterances: int
    transcript: str


def p50_p95(seconds: Sequence[float]) -> tuple[float | None, float | None]:
    ms = [s * 1000 for s in seconds]
    return nearest_rank(ms, 0.50), nearest_rank(ms, 0.95)


# --8<-- [start:chunk_size]
async def measure(url: str, key: str, audio: ClientAudio,
                  chunk_ms: int) -> Row:
    report = await stream(url, DIALECTS["deepgram"], key, audio,
                          chunk_ms=chunk_ms, realtime=True)
    seconds = len(audio.payload) / audio.bytes_per_second
    heard = report.utterances
    return Row(
        chunk_ms=chunk_ms,
        sent_per_s=report.chunks_sent / seconds,
        received_per_s=report.messages_received / seconds,
        sent_bytes_per_s=report.bytes_sent / seconds,
        received_bytes_per_s=report.bytes_received / seconds,
        sent_framing_per_s=report.framing_sent / seconds,
        received_framing_per_s=report.framing_received / seconds,
        first_result_ms=p50_p95([u.first_result_s for u in heard
                                 if u.first_result_s is not None]),
        final_latency_ms=p50_p95([u.final_latency_s for u in heard]),
        utterances=len(heard),
        transcript=report.transcript,
    )
# --8<-- [end:chunk_size]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


HEADER = ("chunk ms", "first p50", "first p95", "final p50", "final p95",
          "msgs/s sent", "msgs/s recv", "B/s sent", "B/s recv",
          "hdr B/s sent", "hdr B/s recv")


def cells(r: Row) -> tuple[str, ...]:
    return (str(r.chunk_ms), ms(r.first_result_ms[0]),
            ms(r.first_result_ms[1]), ms(r.final_latency_ms[0]),
            ms(r.final_latency_ms[1]), f"{r.sent_per_s:.1f}",
            f"{r.received_per_s:.1f}", f"{r.sent_bytes_per_s:,.0f}",
            f"{r.received_bytes_per_s:,.0f}",
            f"{r.sent_framing_per_s:,.0f}",
            f"{r.received_framing_per_s:,.0f}")


def table(rows: Sequence[Row], markdown: bool = False) -> str:
    """Latencies in ms, payload and frame-header bytes per second."""
    grid = [HEADER] + [cells(r) for r in rows]
    if markdown:
        lines = [f"| {' | '.join(row)} |" for row in grid]
        lines.insert(1, "|" + " ---: |" * len(HEADER))
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in grid) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width
                               in zip(row, widths, strict=True))
                     for row in grid)


def plot(rows: Sequence[Row], path: Path, title: str) -> None:
    """Latency on the left, messages and bytes per second on the right."""
    sizes = [r.chunk_ms for r in rows]
    figure = Figure(figsize=(10, 4), layout="constrained")
    latency, traffic = figure.subplots(1, 2)
    for label, values, style in (
        ("first result p50", [r.first_result_ms[0] for r in rows], "o-"),
        ("first result p95", [r.first_result_ms[1] for r in rows], "o--"),
        ("final p50", [r.final_latency_ms[0] for r in rows], "s-"),
        ("final p95", [r.final_latency_ms[1] for r in rows], "s--"),
    ):
        latency.plot(sizes, [math.nan if v is None else v for v in values],
                     style, label=label)
    latency.axhline(300, color="grey", lw=0.8, ls=":", label="300 ms")
    latency.set(xlabel="chunk (ms)", ylabel="latency (ms)",
                title="latency from the spoken word")
    latency.legend(fontsize="small")
    traffic.plot(sizes, [r.sent_per_s for r in rows], "o-",
                 label="messages/s sent")
    traffic.plot(sizes, [r.received_per_s for r in rows], "o--",
                 label="messages/s received")
    traffic.set(xlabel="chunk (ms)", ylabel="messages per second",
                yscale="log", title="traffic")
    wire = traffic.twinx()  # payload and frame headers, each way
    wire.plot(sizes, [(r.sent_bytes_per_s + r.sent_framing_per_s) / 1000
                      for r in rows], "^:", color="grey",
              label="kB/s sent")
    wire.plot(sizes, [(r.received_bytes_per_s + r.received_framing_per_s)
                      / 1000 for r in rows], "v:", color="black",
              label="kB/s received")
    wire.set(ylabel="kB per second (payload + frame headers)",
             yscale="log")
    lines = traffic.get_legend_handles_labels()
    more = wire.get_legend_handles_labels()
    traffic.legend(lines[0] + more[0], lines[1] + more[1],
                   fontsize="small")
    figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


@asynccontextmanager
async def serving_locally() -> AsyncIterator[tuple[str, str]]:
    """The chapter's service with default settings, in this process and
    ready: yields its URL and a fresh key."""
    key = secrets.token_urlsafe(8)
    built = build_server(parse_settings(["--port", "0"], env={}),
                         ApiKeys.of(key))
    await built.server.start("127.0.0.1", 0)
    await built.recognizer.start()  # the cold start, before any stream
    try:
        yield f"ws://127.0.0.1:{built.server.port}", key
    finally:
        await built.server.shutdown()
        await built.recognizer.stop()


async def run(fixture: Path, url: str | None, key: str | None,
              sizes: Sequence[int] = CHUNK_SIZES_MS) -> list[Row]:
    audio = load_audio(fixture)
    if url is not None and key is not None:
        return [await measure(url, key, audio, size) for size in sizes]
    async with serving_locally() as (local, local_key):
        # One size at a time: streams at once would share the device.
        return [await measure(local, local_key, audio, size)
                for size in sizes]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch04_streaming.chunk_experiment")
    parser.add_argument("--fixture", default="support_call")
    parser.add_argument("--url", help="an already running server")
    parser.add_argument("--key", help="its API key")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT,
                        help=f"PNG to draw (default: {DEFAULT_PLOT})")
    parser.add_argument("--markdown", action="store_true",
                        help="print a Markdown table")
    args = parser.parse_args(argv)
    fixture = DEFAULT_MANIFEST.parent / f"{args.fixture}.wav"
    if not fixture.is_file():
        parser.error(f"no fixture {fixture}")
    rows = asyncio.run(run(fixture, args.url, args.key))
    print(table(rows, args.markdown))
    plot(rows, args.plot, f"{args.fixture}, paced, Deepgram dialect")
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
