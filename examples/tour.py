"""The guided tour behind `make demo`.

Each chapter adds a stop: it starts that chapter's service, drives it
with a client, and prints what to look at. Stops run in chapter order,
and the tour exits non-zero if any stop fails.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from examples.catalogue import catalogue_table
from examples.fixtures import load_manifest
from examples.tour_ch03 import accelerator_lab
from examples.tour_ch04 import streaming_service
from examples.tour_ch05 import grpc_stream
from examples.tour_ch06 import many_streams
from examples.tour_ch07 import api_styles
from examples.tour_ch08 import metering_and_billing
from examples.tour_ch11 import slo_report

Stop = tuple[str, Callable[[], None]]


def sample_audio() -> None:
    manifest = load_manifest()
    print(catalogue_table(manifest))
    seconds = sum(f.duration_s for f in manifest.fixtures)
    print(
        f"\n{len(manifest.fixtures)} fixtures, {seconds:.1f} s of audio,"
        " with word times exact to the sample:"
        " examples/audio/manifest.json"
    )


STOPS: list[Stop] = [
    ("The sample audio every chapter streams", sample_audio),
    ("Chapter 3: batching and right-sizing on a simulated accelerator",
     accelerator_lab),
    ("Chapter 4: streaming speech recognition over WebSocket",
     streaming_service),
    ("Chapter 5: the same audio over gRPC bidirectional streaming",
     grpc_stream),
    ("Chapter 6: many streams, one accelerator, one batching pipeline",
     many_streams),
    ("Chapter 7: one service, an OpenAI-compatible and an AIP-styled API",
     api_styles),
    ("Chapter 8: usage metering, invoices and Stripe delivery",
     metering_and_billing),
    ("Chapter 11: SLOs, error budgets and burn-rate alerts", slo_report),
]


def main() -> int:
    for number, (title, stop) in enumerate(STOPS, start=1):
        print(f"\n== {number}. {title} ==\n", flush=True)
        stop()
    print("\nTour complete. Run `make test` to run the test suite.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
