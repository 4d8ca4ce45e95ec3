"""Chunk size, measured: messages per second against latency.

Chapter 4, "Chunk size selection". Streams one fixture at real-time pace
with 100, 200 and 250 ms chunks to a server started in this process (or
to `--url`), and prints, for each size, the messages per second each way,
the time to the first result and the latency of finals. Bigger chunks
mean fewer messages and later results: the tradeoff the chapter weighs.

    python -m ch04_streaming.chunk_experiment [--fixture quick_brown_fox]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ch04_streaming.app import build_server
from ch04_streaming.auth import ApiKeys
from ch04_streaming.client import DIALECTS, ClientAudio, load_audio, stream
from ch04_streaming.settings import DEFAULT_MANIFEST, parse_settings

CHUNK_SIZES_MS = (100, 200, 250)


@dataclass(frozen=True)
class Row:
    chunk_ms: int
    sent_per_s: float
    received_per_s: float
    first_result_ms: float | None
    final_latency_ms: float | None
    transcript: str


async def measure(url: str, key: str, audio: ClientAudio,
                  chunk_ms: int) -> Row:
    report = await stream(url, DIALECTS["deepgram"], key, audio,
                          chunk_ms=chunk_ms, realtime=True)
    seconds = len(audio.payload) / audio.bytes_per_second
    finals = [r.latency_s * 1000 for r in report.finals]
    first = report.first_result_s
    return Row(
        chunk_ms=chunk_ms,
        sent_per_s=report.chunks_sent / seconds,
        received_per_s=report.messages_received / seconds,
        first_result_ms=None if first is None else first * 1000,
        final_latency_ms=statistics.median(finals) if finals else None,
        transcript=report.transcript,
    )


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(rows: Sequence[Row]) -> str:
    lines = ["chunk ms  sent/s  received/s  first result ms  final ms"]
    for r in rows:
        lines.append(f"{r.chunk_ms:>8}  {r.sent_per_s:>6.1f}"
                     f"  {r.received_per_s:>10.1f}"
                     f"  {ms(r.first_result_ms):>15}"
                     f"  {ms(r.final_latency_ms):>8}")
    return "\n".join(lines)


async def run(fixture: Path, url: str | None, key: str | None,
              sizes: Sequence[int] = CHUNK_SIZES_MS) -> list[Row]:
    audio = load_audio(fixture)
    if url is not None and key is not None:
        return [await measure(url, key, audio, size) for size in sizes]
    key = secrets.token_urlsafe(8)
    settings = parse_settings(["--port", "0", "--load-s", "0",
                               "--warmup-s", "0"], env={})
    built = build_server(settings, ApiKeys.of(key))
    await built.server.start("127.0.0.1", 0)
    await built.recognizer.start()
    try:
        local = f"ws://127.0.0.1:{built.server.port}"
        return [await measure(local, key, audio, size) for size in sizes]
    finally:
        await built.server.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch04_streaming.chunk_experiment")
    parser.add_argument("--fixture", default="quick_brown_fox")
    parser.add_argument("--url", help="an already running server")
    parser.add_argument("--key", help="its API key")
    args = parser.parse_args(argv)
    fixture = DEFAULT_MANIFEST.parent / f"{args.fixture}.wav"
    if not fixture.is_file():
        parser.error(f"no fixture {fixture}")
    rows = asyncio.run(run(fixture, args.url, args.key))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
