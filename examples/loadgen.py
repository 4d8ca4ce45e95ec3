"""`python -m examples.loadgen`: many real-time streams, one service.

Chapter 6, "Handling multiple concurrent streams". Ramps N concurrent
streams of the sample audio onto a running speech service, over
WebSocket (Deepgram or AssemblyAI dialect) or gRPC, each paced as a
live microphone; shows live progress; writes chapter 11's SLI records
(`python -m ch11_slo report FILE` reads them); prints a table per load
level and plots latency percentiles against concurrent streams. The
capacity it reports is the most streams whose p95 final latency after
the end of speech, the endpointing silence excluded, stays within
300 ms with every stream admitted.

    SPEECH_API_KEYS=dev-loadgen python -m ch06_pipeline &
    python -m examples.loadgen --steps 50,100,200 --duration 30 \\
        --ramp 5 --records build/load.jsonl --plot build/load.png

A benchmark imports `run_level`, `summary_table`, `plot` and `capacity`
from here. The key is `--api-key`, else the first of SPEECH_API_KEYS,
else the development key `dev-loadgen`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from ch04_streaming.app import event_loop_factory
from ch04_streaming.auth import split_keys
from ch04_streaming.client import DIALECTS
from ch11_slo.records import Record, write_records
from examples.fixtures import load_manifest
from examples.loadgen_level import (
    DEV_KEY,
    SLO_MS,
    LevelResult,
    Tally,
    Target,
    capacity,
    fixtures_of,
    run_level,
)
from examples.loadgen_report import live_progress, plot, summary, summary_table

__all__ = ["LevelResult", "Tally", "Target", "capacity", "main", "plot",
           "run_level", "summary", "summary_table"]


def positive_ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of stream counts: {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("stream counts must be 1 or more")
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m examples.loadgen",
        description="Concurrent real-time streams against a speech"
        " service; chapter 11 records, a summary and a plot.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", default="ws://127.0.0.1:8006",
                       help="WebSocket service, ws://host:port"
                       " (default %(default)s)")
    where.add_argument("--grpc", metavar="HOST:PORT",
                       help="gRPC service instead (chapter 6: port 50006)")
    p.add_argument("--dialect", choices=sorted(DIALECTS),
                   default="deepgram", help="WebSocket dialect")
    p.add_argument("--api-key", help="default: the first of"
                   f" SPEECH_API_KEYS, else {DEV_KEY}")
    levels = p.add_mutually_exclusive_group()
    levels.add_argument("--streams", type=int, help="concurrent streams"
                        " (default 10)")
    levels.add_argument("--steps", type=positive_ints, metavar="N,N,...",
                        help="run each level in turn, e.g. 50,100,200")
    p.add_argument("--duration", type=float, default=30.0, metavar="S",
                   help="seconds each stream streams, per level")
    p.add_argument("--ramp", type=float, default=5.0, metavar="S",
                   help="streams start spread over this many seconds")
    p.add_argument("--fixture", action="append", metavar="ID",
                   help="a manifest fixture to loop (repeatable; default:"
                   " the utterance fixtures and the conversation)")
    p.add_argument("--chunk-ms", type=int, default=100,
                   help="audio per message, 20 to 250 ms")
    p.add_argument("--speed", type=float, default=1.0,
                   help="times real time (default 1: a live microphone)")
    p.add_argument("--drain", type=float, default=5.0, metavar="S",
                   help="after the last chunk, longest wait for finals")
    p.add_argument("--endpointing-ms", type=float, default=300.0,
                   help="the service's trailing silence, taken out of"
                   " final latency (default %(default)g)")
    p.add_argument("--slo-ms", type=float, default=SLO_MS,
                   help="p95 final latency limit (default %(default)g)")
    p.add_argument("--records", type=Path, metavar="PATH.jsonl",
                   help="write chapter 11's SLI records here")
    p.add_argument("--plot", type=Path, metavar="PATH.png",
                   help="plot percentiles against concurrent streams")
    p.add_argument("--summary-json", type=Path, metavar="PATH",
                   help="write the summary as JSON")
    p.add_argument("--no-progress", action="store_true",
                   help="no live progress display")
    return p


def checked(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    """Exit 2 naming the flag at fault."""
    if args.streams is not None and args.streams < 1:
        p.error("--streams must be 1 or more")
    if not args.duration > 0:
        p.error("--duration must be more than 0")
    if args.ramp < 0:
        p.error("--ramp must be 0 or more")
    if not 20 <= args.chunk_ms <= 250:
        p.error("--chunk-ms must be from 20 to 250")
    if not args.speed > 0:
        p.error("--speed must be more than 0")
    if args.drain < 0:
        p.error("--drain must be 0 or more")
    if args.endpointing_ms < 0:
        p.error("--endpointing-ms must be 0 or more")
    if not args.url.startswith(("ws://", "wss://")):
        p.error("--url must start with ws:// or wss://")
    if args.grpc is not None and ":" not in args.grpc:
        p.error("--grpc must be host:port")
    known = {f.id: f for f in load_manifest().fixtures}
    for fixture_id in args.fixture or ():
        if fixture_id not in known:
            p.error(f"--fixture: no fixture {fixture_id!r} in the manifest")
        if not known[fixture_id].utterances:
            p.error(f"--fixture: {fixture_id!r} has no speech to score")


def api_key(given: str | None) -> str:
    keys = split_keys(os.environ.get("SPEECH_API_KEYS", ""))
    return given or next(iter(keys), DEV_KEY)


async def run(args: argparse.Namespace, console: Console
              ) -> list[LevelResult]:
    target = Target(url=args.url.rstrip("/"), grpc=args.grpc,
                    dialect=args.dialect, api_key=api_key(args.api_key))
    fixtures = fixtures_of(args.fixture)
    endpointing_s = args.endpointing_ms / 1000
    results = []
    for level, streams in enumerate(args.steps or [args.streams or 10]):
        tally = Tally(endpointing_s=endpointing_s)
        async with live_progress(tally, console,
                                 enabled=not args.no_progress):
            results.append(await run_level(
                target, streams, args.duration, args.ramp,
                fixtures=fixtures, chunk_ms=args.chunk_ms,
                speed=args.speed, endpointing_s=endpointing_s,
                drain_s=args.drain, tally=tally,
                stream_prefix=f"L{level + 1}-"))
        last = results[-1]
        console.print(f"{streams} streams: {last.admitted} admitted,"
                      f" {last.rejected} rejected, {last.failed} failed")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    checked(args, p)
    console = Console(stderr=True)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        results = runner.run(run(args, console))
    Console().print(summary_table(results, args.slo_ms))
    if args.records is not None:
        records: list[Record] = [r for level in results
                                 for r in level.records]
        write_records(args.records, records)
        print(f"wrote {len(records)} records to {args.records}")
    if args.plot is not None:
        plot(results, args.plot, args.slo_ms)
        print(f"wrote {args.plot}")
    if args.summary_json is not None:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(
            json.dumps(summary(results, args.slo_ms), indent=2) + "\n")
        print(f"wrote {args.summary_json}")
    print(f"capacity: {capacity(results, args.slo_ms)} streams")
    return 0


if __name__ == "__main__":
    sys.exit(main())
