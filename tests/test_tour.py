"""`make demo`: the tour runs, and its catalogue reads the real files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from examples.catalogue import catalogue_table, shorten
from examples.fixtures import load_manifest

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_catalogue_lists_every_fixture_with_measured_duration() -> None:
    manifest = load_manifest()
    lines = catalogue_table(manifest).splitlines()
    assert len(lines) == 2 + len(manifest.fixtures)
    long_row = next(line for line in lines if line.startswith("support_call"))
    duration = manifest.get("support_call").duration_s
    assert f"{duration:.2f}" in long_row.split()


def test_long_text_is_shortened_and_silence_is_named() -> None:
    assert shorten("a" * 60, width=10) == "aaaaaaa..."
    assert shorten("") == "(no speech)"


@pytest.mark.timeout(300)  # every chapter's stop, in real time
def test_tour_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.tour"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=260,
    )
    assert done.returncode == 0, done.stderr
    assert "quick_brown_fox_opus" in done.stdout
    for dialect in ("deepgram", "assemblyai"):
        assert f"[{dialect:<10}] you are welcome have a nice day" in (
            done.stdout)
    assert "service stopped on SIGTERM (exit 0)" in done.stdout
    # Chapter 5: a fixture over gRPC, its final and its billed time.
    assert "[grpc] call me back at five five five zero one nine nine" in (
        done.stdout)
    assert "gRPC service stopped on SIGTERM" in done.stdout
    # Chapter 6: a short load through the pipeline, and its batches.
    assert "final latency after end of speech" in done.stdout
    assert re.search(r"pipeline: \d+ batches of \d+\.\d requests",
                     done.stdout)
    assert "pipeline stopped on SIGTERM" in done.stdout
    assert "word error rate (corpus)  0.0% of 146 words" in done.stdout
    # Chapter 7: OpenAI's SDK streams the call's deltas as they come;
    # the AIP route answers the same audio with an operation, polled.
    assert "ms  delta  you are welcome have a nice day" in done.stdout
    assert "transcript.text.done (73 words)" in done.stdout
    assert re.search(r"GET /v2/operations/\w+: SUCCEEDED 100%",
                     done.stdout)
    assert re.search(r"transcripts/\w+: 9 segments", done.stdout)
    assert "API stopped on SIGTERM" in done.stdout
    # Chapter 8: a retried usage event is a duplicate; the streams'
    # audio and add-ons are priced; delivery is a dry run of real calls.
    assert "POST /v1/usage/events (retry): 202, duplicate" in done.stdout
    assert "Invoice preview: demo" in done.stdout
    assert "audio+diarization" in done.stdout
    assert "invoice line audio+diarization:" in done.stdout
    assert "matches" in done.stdout
    assert '"call": "POST /v1/billing/meter_events"' in done.stdout
    assert "page      1h    5m     14.4    0.0144" in done.stdout
    assert "Tour complete" in done.stdout
