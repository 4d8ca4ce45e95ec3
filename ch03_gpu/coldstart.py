"""`python -m ch03_gpu coldstart`: measure our own service's cold start.

Chapter 3, "Cold start anatomy" and "Cold start mitigation". Runs the
study (N cold starts of `python -m ch04_streaming` per variant, N
warm-pool takeovers, import timings), prints the anatomy, the
mitigations and the published GPU figures beside our phases, and
draws the timeline. Takes about 15 s a run on two cores.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ch03_gpu.coldstart_report import (
    DEFAULT_TIMELINE,
    anatomy_table,
    draw_timeline,
    gpu_table,
    mitigation_table,
)
from ch03_gpu.coldstart_study import measure


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch03_gpu coldstart",
        description="Cold-start anatomy and mitigations, measured on"
                    " chapter 4's service.")
    parser.add_argument("--runs", type=int, default=5,
                        help="starts per variant (default %(default)s)")
    parser.add_argument("--fixture", type=Path, default=None,
                        help="16-bit mono WAV to stream (default: the"
                             " quick brown fox)")
    parser.add_argument("--timeline", type=Path, default=DEFAULT_TIMELINE,
                        help="where to draw the timeline (PNG)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be 1 or more")

    def progress(step: str) -> None:
        print(f"  {step}", file=sys.stderr, flush=True)

    study = measure(args.runs, args.fixture, progress)
    runs = len(study.shipped)
    print(f"\nCold start of python -m ch04_streaming, {runs} runs"
          " (ms from spawn; the first result of a streamed utterance):\n")
    print(anatomy_table(study.shipped))
    print("\nMitigations, each measured without and with it"
          f" (medians of {runs}):\n")
    print(mitigation_table(study))
    print("\nThe same steps on a GPU server, as published:\n")
    print(gpu_table(study))
    path = draw_timeline(study, args.timeline)
    print(f"\ntimeline: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
