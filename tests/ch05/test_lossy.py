"""The lossy-link lab: its loss rule, its statistics, its namespace.

The rule and the statistics are pure and tested as such. The lab itself
runs for real, as root, in a network namespace with nftables (CI has
both; elsewhere those tests skip with the reason), and must leave no
namespace behind, whether it finishes or is interrupted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from bench.ch05_rtc import figures
from ch05_protocols import lossy
from ch05_protocols.loss_rule import (
    Counted,
    loss_ruleset,
    parse_counters,
    permille,
    replacing,
)
from ch05_protocols.lossy_speech import chunk_bytes, speech
from ch05_protocols.lossy_stats import (
    chunk_latencies_ms,
    percentile,
    summarize,
)
from ch05_protocols.lossy_stream import Covered, Trace, deepgram_covered
from ch05_protocols.lossy_transports import TRANSPORTS
from ch05_protocols.lossy_wt import heard_s
from ch05_protocols.netns import (
    Namespace,
    missing_requirements,
    remove_orphans,
)
from tests.environment import unavailable

LAB_TIMEOUT_S = 100
RELIABLE = ("websocket", "grpc", "wt_streams")


def test_the_rule_drops_the_chosen_share_on_the_input_hook() -> None:
    rules = loss_ruleset(5).splitlines()

    assert rules[0] == "table inet ch05_lossy {"
    assert ("\t\ttype filter hook input priority filter; policy accept;"
            in rules)
    assert '\t\tcounter name "seen"' in rules
    assert ('\t\tnumgen random mod 1000 < 50 counter name "dropped" drop'
            in rules)


@pytest.mark.parametrize(("pct", "threshold"),
                         [(0, 0), (0.5, 5), (1, 10), (2, 20), (100, 1000)])
def test_a_rate_in_percent_is_a_threshold_out_of_1000(
        pct: float, threshold: int) -> None:
    assert permille(pct) == threshold
    assert f"mod 1000 < {threshold} counter" in loss_ruleset(pct)


@pytest.mark.parametrize("pct", [-1, 100.5])
def test_a_rate_outside_0_to_100_is_refused(pct: float) -> None:
    with pytest.raises(ValueError, match="not within 0-100%"):
        loss_ruleset(pct)


def test_the_rate_changes_in_one_transaction() -> None:
    text = replacing(2)

    assert text.startswith("table inet ch05_lossy\n"
                           "delete table inet ch05_lossy\n"
                           "table inet ch05_lossy {\n")
    assert text.endswith(loss_ruleset(2))


def test_counters_are_read_from_nft_json() -> None:
    listing = json.dumps({"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"counter": {"family": "inet", "name": "seen", "packets": 2000,
                     "bytes": 1}},
        {"counter": {"family": "inet", "name": "dropped", "packets": 100,
                     "bytes": 1}}]})

    link = parse_counters(listing) - Counted(seen=1000, dropped=50)

    assert link == Counted(seen=1000, dropped=50)
    assert link.loss_pct == 5.0


def test_a_chunk_waits_for_the_first_result_that_covers_it() -> None:
    sent = [10.00, 10.02, 10.04, 10.06, 10.08]  # 5 chunks of 20 ms
    timed = [False, True, True, True, True]
    # Chunk 2 was held behind a lost packet: one result at 10.30 covers
    # chunks 2 and 3 at once; then chunk 4's end, short of 0.1 by the
    # error of a float sum.
    results = [(0.04, 10.045), (0.08, 10.30), (0.1 - 1e-9, 10.11)]
    trace = Trace(sent, results, ended_at=10.50)

    latencies, unanswered = chunk_latencies_ms(trace, timed)

    assert latencies == pytest.approx([25.0, 260.0, 240.0, 30.0])
    assert unanswered == 0


def test_a_chunk_no_result_reached_counts_until_the_stream_ended() -> None:
    trace = Trace([0.0, 0.02, 0.04], [(0.02, 0.01)], ended_at=1.0)

    latencies, unanswered = chunk_latencies_ms(trace, [True] * 3)

    assert latencies == pytest.approx([10.0, 980.0, 960.0])
    assert unanswered == 2


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, unsorted

    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7


def test_a_cell_summarises_latency_and_audio_lost() -> None:
    sent = [i * 0.02 for i in range(100)]  # 2 s of audio
    # One result per chunk, 5 ms after it; one of them 205 ms late.
    results = [((i + 1) * 0.02, t + 0.005) for i, t in enumerate(sent)]
    results[40] = (results[40][0], sent[40] + 0.205)
    trace = Trace(sent, results, received_s=1.9, ended_at=3.0)

    cell = summarize("datagrams", 5, trace, [True] * 100)

    assert (cell.chunks, cell.unanswered, cell.results) == (100, 0, 100)
    assert cell.p50_ms == pytest.approx(5.0)
    assert cell.p99_ms == pytest.approx(5.0)  # one in 100 is the 1%
    assert cell.max_ms == pytest.approx(205.0)
    assert cell.sent_s == 2.0
    assert cell.audio_lost_pct == pytest.approx(5.0)


def test_a_cell_without_results_or_report_says_so() -> None:
    cell = summarize("websocket", 1, Trace(sent_at=[0.0, 0.02]),
                     [False, False])

    assert (cell.chunks, cell.p99_ms, cell.audio_lost_pct) == (0, None,
                                                               None)


def test_the_speech_is_the_fixtures_back_to_back_in_20_ms_chunks() -> None:
    audio = speech(30)

    assert len(audio.chunks) == len(audio.timed) == 1500
    assert audio.audio_s == pytest.approx(30.0)
    assert {len(c) for c in audio.chunks} == {chunk_bytes()} == {640}
    # The first fixture's one utterance: first word ends at 0.78 s, the
    # utterance at 4.86 s.
    assert audio.timed[39:41] == [False, True]
    assert audio.timed[241:243] == [True, False]
    assert 0.5 < sum(audio.timed) / len(audio.timed) < 0.9


def test_the_speech_at_another_rate_keeps_its_chunks_and_times() -> None:
    at_16k, at_24k = speech(10), speech(10, 24_000)

    assert {len(c) for c in at_24k.chunks} == {chunk_bytes(24_000)} == {960}
    assert at_24k.timed == at_16k.timed


def test_webtransport_results_and_report_are_read() -> None:
    results = {"type": "Results", "start": 1.5, "duration": 0.25,
               "channel": {"alternatives": [{"transcript": "hello"}]}}
    empty = {**results, "channel": {"alternatives": [{"transcript": ""}]}}
    closed = {"type": "webtransport.closed", "code": 1000, "reason": "",
              "audio": {"mode": "datagram", "frames": 290,
                        "concealed_s": 0.2, "late_frames": 1,
                        "duplicate_frames": 0, "dropped_frames": 5,
                        "errors": 0}}

    assert deepgram_covered(results) == Covered(1.75)
    assert deepgram_covered(empty) is None
    assert deepgram_covered(closed) is None
    assert heard_s(closed) == 5.7  # 285 frames of 20 ms reached it
    assert heard_s(results) is None


def test_bench_figures_name_transport_measure_and_rate() -> None:
    trace = Trace([0.0], [(0.02, 0.01)], received_s=0.02)
    cell = summarize("grpc", 0.5, trace, [True], 0.4)

    named = figures([vars(cell)])

    assert named["p99_ms_grpc_at_0_5pct"] == pytest.approx(10.0)
    assert named["audio_lost_pct_grpc_at_0_5pct"] == 0.0
    assert named["results_grpc_at_0_5pct"] == 1
    assert named["observed_loss_pct_grpc_at_0_5pct"] == 0.4


def test_missing_root_and_commands_are_named() -> None:
    missing = missing_requirements(euid=1000, which=lambda name: None)

    assert missing == [
        "root (to create a network namespace and load nftables rules)",
        "the `ip` command (iproute2)", "the `nft` command (nftables)"]
    assert missing_requirements(euid=0, which=lambda n: f"/bin/{n}") == []


def test_without_requirements_the_lab_says_why_and_exits_0(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = lossy.main(["--quick"], missing=lambda: ["root (to ...)"])

    assert code == 0
    assert capsys.readouterr().out == (
        "the lossy-link lab needs root (to ...). Nothing was measured.\n")


@pytest.mark.parametrize(("flags", "message"), [
    (["--transports", "websocket,carrier_pigeon"],
     "--transports: unknown carrier_pigeon; choose from websocket, grpc,"),
    (["--rates", "0,150"], "--rates: each rate is a percentage, 0 to 100"),
    (["--rates", "five"], "--rates: invalid numbers value: 'five'"),
    (["--seconds", "900"], "--seconds: the fixtures hold 77 s of speech"),
    (["--seconds", "0"], "--seconds: the fixtures hold 77 s of speech"),
])
def test_bad_flags_are_refused_by_name(
        capsys: pytest.CaptureFixture[str], flags: list[str],
        message: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        lossy.main(flags, missing=lambda: [])

    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


class FakeIp:
    """`ip` and `nft` as far as namespace removal uses them."""

    def __init__(self, names: list[str]) -> None:
        self.names, self.commands = names, list[list[str]]()

    def __call__(self, argv: Sequence[str], stdin: str | None) -> str:
        self.commands.append(list(argv))
        if list(argv) == ["ip", "netns", "list"]:
            return "".join(f"{n} (id: {i})\n"
                           for i, n in enumerate(self.names))
        if argv[:3] == ["ip", "netns", "del"]:
            self.names.remove(argv[3])
        return ""


def test_namespaces_of_dead_labs_are_removed_and_no_other() -> None:
    ip = FakeIp(["ch05-lossy-111", "ch05-lossy-222", "other", "x-lossy-1"])

    removed = remove_orphans(ip, alive=lambda pid: pid == 222)

    assert removed == ["ch05-lossy-111"]
    assert ip.names == ["ch05-lossy-222", "other", "x-lossy-1"]
    assert ["ip", "netns", "exec", "ch05-lossy-111", "nft", "delete",
            "table", "inet", "ch05_lossy"] in ip.commands


def require_lab() -> None:
    missing = missing_requirements()
    if missing:
        unavailable("the lossy-link lab needs " + "; ".join(missing))


def namespace_of(pid: int) -> str:
    return f"ch05-lossy-{pid}"


def present() -> list[str]:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True,
                          text=True, timeout=30, check=True)
    return [line.split()[0] for line in done.stdout.splitlines() if line]


def lab_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "ch05_protocols.lossy", *flags]


def test_the_lab_measures_every_transport_at_0_and_5_percent(
        tmp_path: Path) -> None:
    require_lab()
    out = tmp_path / "lossy"

    lab = subprocess.Popen(lab_command("--quick", "--out", str(out)),
                           stdout=subprocess.PIPE, text=True)
    stdout, _ = lab.communicate(timeout=LAB_TIMEOUT_S)

    assert lab.returncode == 0, stdout
    assert namespace_of(lab.pid) not in present()
    cells = json.loads((out / "lossy.json").read_text())["cells"]
    assert [(c["transport"], c["loss_pct"]) for c in cells] == [
        (name, rate) for rate in (0.0, 5.0) for name in TRANSPORTS]
    for cell in cells:
        assert cell["chunks"] > 100
        assert cell["sent_s"] == 6.0
        assert 0 < cell["p50_ms"] <= cell["p99_ms"] <= cell["max_ms"]
        if cell["loss_pct"] == 0:
            assert cell["observed_loss_pct"] == 0.0
            assert (cell["audio_lost_pct"], cell["unanswered"]) == (0, 0)
            continue
        # Thousands of packets at 5%: the rule cannot miss them all.
        assert 0 < cell["observed_loss_pct"] < 15
        if cell["transport"] in RELIABLE:  # sent again, however late
            assert cell["audio_lost_pct"] == 0.0
        else:  # 300 frames at 5%: some are lost for good
            assert cell["audio_lost_pct"] > 0
    assert "websocket        5%" in stdout
    assert (out / "lossy.png").stat().st_size > 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_an_interrupted_lab_removes_its_namespace(
        tmp_path: Path, signum: signal.Signals) -> None:
    require_lab()
    lab = await asyncio.create_subprocess_exec(
        *lab_command("--quick", "--transports", "websocket", "--out",
                     str(tmp_path)), stdout=asyncio.subprocess.PIPE)
    assert lab.stdout is not None
    try:
        async with asyncio.timeout(LAB_TIMEOUT_S):
            # Interrupted mid-lab: after its first cell, servers running.
            while b"websocket" not in (line := await lab.stdout.readline()):
                assert line, "the lab ended before its first result"
            assert namespace_of(lab.pid) in present()
            lab.send_signal(signum)
            await lab.stdout.read()
            code = await lab.wait()
    finally:
        if lab.returncode is None:
            lab.kill()
            await lab.wait()

    assert code == 128 + signum
    assert namespace_of(lab.pid) not in present()
    assert not (tmp_path / "lossy.json").exists()


def test_the_lab_inside_refuses_to_run_outside_its_namespace(
        capsys: pytest.CaptureFixture[str]) -> None:
    require_lab()
    name = namespace_of(os.getpid())

    code = lossy.main(["--quick", "--inside", name])

    assert code == 2
    assert f"not inside the namespace {name}" in capsys.readouterr().err


def test_a_namespace_is_created_with_its_rule_and_removed() -> None:
    require_lab()
    namespace = Namespace(namespace_of(os.getpid()))
    try:
        namespace.create()
        assert namespace.name in present()
        rules = subprocess.run([*namespace.nft, "list", "ruleset"],
                               capture_output=True, text=True,
                               timeout=30, check=True).stdout
        assert "numgen random mod 1000 < 0" in rules
    finally:
        namespace.remove()

    assert namespace.name not in present()
