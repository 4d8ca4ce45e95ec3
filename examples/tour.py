"""The guided tour behind `make demo` (`make demo CHAPTER=6` for one).

Each chapter adds a stop: it starts that chapter's service with its
embedded defaults (SQLite, in-process limits, no collector), drives it
with a client, prints what to look at, and stops the service before the
next stop starts. Stops run in chapter order; the tour ends with a
summary of each stop's time and the plots it wrote, and exits non-zero
if any stop fails.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from examples.catalogue import catalogue_table
from examples.fixtures import load_manifest
from examples.tour_ch03 import accelerator_lab
from examples.tour_ch04 import streaming_service
from examples.tour_ch05 import grpc_and_webrtc
from examples.tour_ch06 import many_streams
from examples.tour_ch07 import api_styles
from examples.tour_ch08 import metering_and_billing
from examples.tour_ch09 import keys_tokens_and_redaction
from examples.tour_ch10 import compliance_records
from examples.tour_ch11 import records_missing, slo_report
from examples.tour_ch12 import scaling_out

BUILD = Path("build")


def sample_audio() -> None:
    manifest = load_manifest()
    print(catalogue_table(manifest))
    seconds = sum(f.duration_s for f in manifest.fixtures)
    print(
        f"\n{len(manifest.fixtures)} fixtures, {seconds:.1f} s of audio,"
        " with word times exact to the sample:"
        " examples/audio/manifest.json"
    )


@dataclass(frozen=True)
class Stop:
    chapter: int | None  # None: the tour's own introduction
    title: str
    run: Callable[[], None]
    # Run first when this stop is toured alone, unless already done.
    needs: Callable[[], bool] | None = None
    needed: Callable[[], None] | None = None


STOPS: list[Stop] = [
    Stop(None, "The sample audio every chapter streams", sample_audio),
    Stop(3, "Chapter 3: batching and right-sizing on a simulated"
         " accelerator", accelerator_lab),
    Stop(4, "Chapter 4: streaming speech recognition over WebSocket",
         streaming_service),
    Stop(5, "Chapter 5: the same audio over gRPC bidirectional streaming"
         " and WebRTC", grpc_and_webrtc),
    Stop(6, "Chapter 6: many streams, one accelerator, one batching"
         " pipeline", many_streams),
    Stop(7, "Chapter 7: one service, an OpenAI-compatible and an"
         " AIP-styled API", api_styles),
    Stop(8, "Chapter 8: usage metering, invoices and Stripe delivery",
         metering_and_billing),
    Stop(9, "Chapter 9: API keys, short-lived tokens, redaction and"
         " revocation", keys_tokens_and_redaction),
    Stop(10, "Chapter 10: an audited stream, a subject's export and"
         " erasure, a tampered log caught", compliance_records),
    # The SLIs are measured on chapter 4's streams: their records.
    Stop(11, "Chapter 11: SLOs, error budgets and burn-rate alerts",
         slo_report, needs=records_missing, needed=streaming_service),
    Stop(12, "Chapter 12: scaling out on Ray Serve: plans, autoscaling,"
         " spot capacity and a preempted replica", scaling_out),
]
CHAPTERS = sorted(s.chapter for s in STOPS if s.chapter is not None)


@dataclass(frozen=True)
class Outcome:
    title: str
    seconds: float
    failed: bool


def plots() -> dict[Path, float]:
    """Every plot under build/, with when it was written."""
    return {path: path.stat().st_mtime for path in BUILD.rglob("*.png")}


def run_stop(number: int, stop: Stop) -> Outcome:
    print(f"\n== {number}. {stop.title} ==\n", flush=True)
    started = time.monotonic()
    try:
        if stop.needs is not None and stop.needed is not None and (
                stop.needs()):
            print("(first, what this stop reads:)\n", flush=True)
            stop.needed()
        stop.run()
    except Exception:  # one failed stop must not hide the others
        traceback.print_exc()
        return Outcome(stop.title, time.monotonic() - started, True)
    return Outcome(stop.title, time.monotonic() - started, False)


def summary(outcomes: Sequence[Outcome], written: Sequence[Path],
            total_s: float) -> str:
    lines = ["", "== Summary ==", ""]
    for outcome in outcomes:
        status = "FAILED" if outcome.failed else "ok"
        lines.append(f"  {status:<6} {outcome.seconds:6.1f} s  "
                     f"{outcome.title}")
    stops = f"{len(outcomes)} stop" + ("s" if len(outcomes) != 1 else "")
    lines.append(f"\n  {stops} in {total_s:.0f} s; every service was"
                 " stopped after its stop.")
    if written:
        lines.append("  Plots written:")
        lines += [f"    {path}" for path in written]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.tour",
        description="The guided tour of every chapter's service.")
    parser.add_argument("--chapter", type=int, choices=CHAPTERS,
                        help="tour one chapter (make demo CHAPTER=N)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [stop for stop in STOPS
              if args.chapter is None or stop.chapter == args.chapter]
    before = plots()
    started = time.monotonic()
    outcomes = [run_stop(number, stop)
                for number, stop in enumerate(chosen, start=1)]
    written = sorted(path for path, mtime in plots().items()
                     if before.get(path) != mtime)
    print(summary(outcomes, written, time.monotonic() - started))
    if any(outcome.failed for outcome in outcomes):
        print("\nThe tour failed: see the stop above.")
        return 1
    print("\nTour complete. Run `make test` to run the test suite.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
