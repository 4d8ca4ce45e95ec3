"""The chapter 11 stop of the tour: the demo's streams, against SLOs.

The chapter 4 stop left per-utterance records of its two streams; this
stop measures their SLIs against the voice-AI tier's targets, prints the
burn-rate table of a 99.9% objective over 30 days, and replays a
synthetic month to show which alerts fire when. Run alone (`python -m
examples.tour_ch11`), it runs the chapter 4 stop first if those records
are missing.
"""

from __future__ import annotations

from ch11_slo import report, scenario
from ch11_slo.__main__ import main as slo_main
from examples.tour_ch04 import DEMO_RECORDS, streaming_service


def records_missing() -> bool:
    """The chapter 4 stop writes the records this stop reads."""
    return not DEMO_RECORDS.exists()


def slo_report() -> None:
    print(f"SLIs of the demo's streams ({DEMO_RECORDS.name}), voice-AI"
          " tier:\n", flush=True)
    report.main([str(DEMO_RECORDS), "--tier", "voice-ai"])
    print("\nBurn-rate alert tiers of a 99.9% SLO over 30 days:\n",
          flush=True)
    slo_main(["burn-rates", "--objective", "99.9", "--period", "30d"])
    print("\nA synthetic month: a healthy baseline, a one-hour outage, a"
          " slow degradation:\n", flush=True)
    scenario.main([])


if __name__ == "__main__":
    if records_missing():
        streaming_service()
    slo_report()
