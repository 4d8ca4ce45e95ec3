"""`make demo`: the tour runs, and its catalogue reads the real files."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from examples import tour as tour_module
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


def processes_in_group(group: int) -> list[str]:
    """The command lines of the processes left in a process group."""
    left = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:  # it ended while we looked
            continue
        # pgrp, after state and ppid; a zombie has ended (whoever
        # adopted it has not reaped it yet)
        if int(fields[2]) == group and fields[0] != "Z":
            left.append(cmdline.replace(b"\0", b" ").decode())
    return left


def tour(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """The tour as `make demo` runs it, in a process group of its own:
    whatever it started and left running is still in that group."""
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.tour", *args], cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    stdout, stderr = process.communicate(timeout=timeout_s)
    left = processes_in_group(process.pid)
    assert left == [], left  # nothing left running
    return subprocess.CompletedProcess(process.args, process.returncode,
                                       stdout, stderr)


@pytest.mark.timeout(420)  # every chapter's stop, in real time
def test_tour_runs_as_a_program() -> None:
    done = tour(timeout_s=380)
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
    # ... and another over WebRTC: its transcript, the codec negotiated
    # and the delay the receiver's jitter buffer added.
    assert "[webrtc] turn off the lights in the living room" in done.stdout
    assert "codec: opus/48000/2" in done.stdout
    assert re.search(r"jitter buffer: \d+\.\d ms median", done.stdout)
    assert "WebRTC service stopped on SIGTERM" in done.stdout
    # Chapter 6: a short load through the pipeline, and its batches.
    assert "final latency after end of speech" in done.stdout
    assert re.search(r"pipeline: \d+ batches of \d+\.\d requests",
                     done.stdout)
    assert "pipeline stopped on SIGTERM" in done.stdout
    # the report's columns are as wide as its longest SLI name
    assert re.search(r"word error rate \(corpus\) +0\.0% of 146 words",
                     done.stdout)
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
    # ... and a simulated month of two customers, billed in dollars
    assert re.search(r"acme: [\d,]+ calls, [\d,.]+ audio hours",
                     done.stdout)
    assert "Invoice preview: acme, 2026-11" in done.stdout
    assert re.search(r"audio with add-ons: \d\.\d\dx", done.stdout)
    assert "page      1h    5m     14.4    0.0144" in done.stdout
    # Chapter 9: a token streams, a number is redacted, a revoked key
    # closes its open stream.
    assert "streamed with the token: 'please read me the weather" in (
        done.stdout)
    assert "redact=numbers: 'my card number is [NUMBER_1]'" in done.stdout
    assert "1008 credential no longer valid: API key revoked" in (
        done.stdout)
    # Chapter 10: a kept stream in its region, a refused one, the
    # subject's export and erasure, a proof checked, a tampered log.
    assert "subject=alice&retain=true: 'please read me the weather" in (
        done.stdout)
    assert ("region=us: refused 403" in done.stdout
            and "may not keep data in region us" in done.stdout)
    assert '"data.stored"' in done.stdout or "data.stored" in done.stdout
    assert re.search(r"1 recordings, 1 transcripts", done.stdout)
    assert '"signature"' in done.stdout
    assert "valid: entry 0 is in the log" in done.stdout
    assert "position 0: edited: entry 0 was edited" in done.stdout
    assert "audit verify exits 1" in done.stdout
    # Chapter 11: the synthetic month (`python -m ch11_slo scenario`)
    assert "error budget left at the end of the period" in done.stdout
    # Chapter 12: a plan, the autoscalers' day, spot's, and a fleet on
    # Ray Serve whose preempted replica hands its stream over.
    assert "* cheapest" in done.stdout
    assert "streams_hysteresis *" in done.stdout
    assert re.search(r"\[replica \w+\] streaming audio needs a low"
                     r" latency path", done.stdout)
    assert "closed 1001 server shutting down" in done.stdout
    assert re.search(r"reconnected to replica \w+: the quick brown fox",
                     done.stdout)
    assert "fleet stopped on SIGTERM (exit 0)" in done.stdout
    assert "Tour complete" in done.stdout
    # The summary: every stop, its time, and the plots written.
    summary = done.stdout.split("== Summary ==")[1]
    assert len(re.findall(r"^  ok +\d+\.\d s  ", summary,
                          re.MULTILINE)) == 11
    assert "11 stops in" in summary
    assert "build/demo/batching.png" in summary
    assert "build/ch11/scenario.png" in summary


@pytest.mark.timeout(120)
def test_one_chapter_is_toured_alone() -> None:
    done = tour("--chapter", "6", timeout_s=100)
    assert done.returncode == 0, done.stderr
    assert "== 1. Chapter 6:" in done.stdout
    assert "Chapter 4" not in done.stdout
    assert "1 stop in" in done.stdout


def test_a_chapter_without_a_stop_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.tour", "--chapter", "13"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "invalid choice: 13" in done.stderr


def test_a_stop_alone_runs_what_it_reads_first_and_a_failure_shows(
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[str] = []
    records: list[str] = []

    def fails() -> None:
        raise RuntimeError("the stop broke")

    stops = [
        tour_module.Stop(4, "four", lambda: records.append("4")),
        tour_module.Stop(11, "eleven", lambda: ran.append("11"),
                         needs=lambda: not records,
                         needed=lambda: records.append("4")),
        tour_module.Stop(8, "eight", fails),
    ]
    monkeypatch.setattr(tour_module, "STOPS", stops)
    assert tour_module.main(["--chapter", "11"]) == 0
    assert (ran, records) == (["11"], ["4"])
    assert tour_module.main(["--chapter", "11"]) == 0  # records exist
    assert (ran, records) == (["11", "11"], ["4"])
    assert tour_module.main(["--chapter", "8"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "The tour failed" in out


def test_every_chapter_stop_runs_alone_as_a_module() -> None:
    """`python -m examples.tour_chNN` runs that stop, as the README and
    the chapter READMEs say."""
    for path in sorted((REPO_ROOT / "examples").glob("tour_ch*.py")):
        tree = ast.parse(path.read_text())
        guards = [node for node in tree.body if isinstance(node, ast.If)
                  and ast.unparse(node.test) == "__name__ == '__main__'"]
        assert guards, path.name
        called = {node.func.id for node in ast.walk(guards[0])
                  if isinstance(node, ast.Call)
                  and isinstance(node.func, ast.Name)}
        stops = {stop.run.__name__ for stop in tour_module.STOPS
                 if stop.run.__module__ == f"examples.{path.stem}"}
        assert stops and stops <= called, path.name


@pytest.mark.timeout(120)
def test_a_chapter_stop_module_runs_on_its_own() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.tour_ch03"], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert "Right-sizing 1,000 streams" in done.stdout
