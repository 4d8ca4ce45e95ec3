"""The load generator against real services: records, refusals, failures.

Streams are sent four times faster than real time to keep the tests
short; every wait is bounded by the load generator's own timeouts and
the test's timeout. Counts are asserted, never which stream got which
slot, so the order in which streams reach the server does not matter.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from ch04_streaming.engine import load_lexicon
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.server import ServerLimits
from ch04_streaming.stream_hooks import (
    NoTracker,
    Refusal,
    StreamStart,
    StreamTracker,
)
from ch05_protocols.settings import GrpcSettings
from ch11_slo.records import (
    StreamRecord,
    UtteranceRecord,
    read_records,
    write_records,
)
from examples.fixtures import MANIFEST_PATH, load_manifest
from examples.loadgen import (
    LevelResult,
    Tally,
    Target,
    capacity,
    main,
    plot,
    run_level,
    summary_table,
)
from examples.loadgen_report import live_progress
from examples.loadgen_workload import Plan, cut
from examples.service import running_service, wait_until_ready
from tests.ch04.harness import KEY, running_server
from tests.ch05.grpc_harness import serving

FIXTURES = [load_manifest().get("quick_brown_fox"),
            load_manifest().get("support_call")]
TIMEOUT_S = 60.0


async def fast_level(target: Target, streams: int = 3,
                     duration_s: float = 6.0) -> LevelResult:
    """A level at four times real time, streams 0.1 s apart."""
    return await run_level(target, streams, duration_s,
                           ramp_s=0.1 * streams, fixtures=FIXTURES,
                           speed=4.0, drain_s=5.0)


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return load_lexicon(MANIFEST_PATH)


def parsed(result: LevelResult, path: Path
           ) -> tuple[list[StreamRecord], list[UtteranceRecord]]:
    """The level's records, written and read back as chapter 11 does."""
    write_records(path, result.records)
    records = read_records(path)
    return ([r for r in records if isinstance(r, StreamRecord)],
            [r for r in records if isinstance(r, UtteranceRecord)])


def assert_heard_the_references(result: LevelResult, path: Path) -> None:
    streams, utterances = parsed(result, path)
    assert (result.admitted, result.rejected, result.failed) == (3, 0, 0)
    assert [s.close_code for s in streams] == [1000] * 3
    assert {u.fixture_id for u in utterances} == {
        "quick_brown_fox", "support_call"}
    assert result.no_finals == 0
    assert result.finals == len(utterances) >= 3
    assert all(u.outcome == "ok" and u.hypothesis == u.reference
               for u in utterances)
    assert result.final_p95_ms is not None


def test_a_plan_scores_only_utterances_sent_whole() -> None:
    lap = cut(load_manifest().get("quick_brown_fox"))
    # 5.5 s of lap: one whole utterance, then 1.3 s into the next turn
    heard = Plan(lap, 0, chunks=68).heard_fixture(68, endpointing_s=0.3)
    assert [(u.start, u.text) for u in heard.utterances] == [
        (0.5, "the quick brown fox jumps over the lazy dog")]
    later = Plan(lap, 0, chunks=120).heard_fixture(120, 0.3)
    assert [u.start for u in later.utterances] == [0.5, 0.5 + lap.lap_s]


async def test_websocket_streams_hear_the_fixture_references(
    lexicon: Lexicon, tmp_path: Path,
) -> None:
    async with running_server(lexicon) as running:
        result = await fast_level(Target(url=running.url, api_key=KEY))
    assert_heard_the_references(result, tmp_path / "records.jsonl")
    assert result.transport == "deepgram"
    assert result.cpu_s > 0 and result.stream_s == pytest.approx(18.0)


async def test_assemblyai_dialect_streams_too(lexicon: Lexicon,
                                             tmp_path: Path) -> None:
    async with running_server(lexicon) as running:
        result = await fast_level(
            Target(url=running.url, api_key=KEY, dialect="assemblyai"))
    assert_heard_the_references(result, tmp_path / "records.jsonl")


async def test_grpc_streams_hear_the_fixture_references(
    lexicon: Lexicon, tmp_path: Path,
) -> None:
    async with serving(lexicon) as running:
        target = Target(grpc=f"127.0.0.1:{running.built.server.port}",
                        api_key=KEY)
        result = await fast_level(target)
    assert_heard_the_references(result, tmp_path / "records.jsonl")
    assert result.transport == "grpc"


async def test_websocket_streams_over_capacity_are_rejected(
    lexicon: Lexicon, tmp_path: Path,
) -> None:
    async with running_server(lexicon, ServerLimits(max_streams=1)
                              ) as running:
        result = await fast_level(Target(url=running.url, api_key=KEY))
    streams, utterances = parsed(result, tmp_path / "records.jsonl")
    assert (result.admitted, result.rejected, result.failed) == (1, 2, 0)
    assert result.retry_after_s == 1.0
    assert sorted(s.close_code for s in streams) == [1000, 1013, 1013]
    assert {u.stream_id for u in utterances} == {
        s.stream_id for s in streams if s.close_code == 1000}


async def test_grpc_streams_over_capacity_are_rejected(
    lexicon: Lexicon,
) -> None:
    settings = GrpcSettings(max_streams=1, shutdown_grace_s=2.0)
    async with serving(lexicon, settings) as running:
        target = Target(grpc=f"127.0.0.1:{running.built.server.port}",
                        api_key=KEY)
        result = await fast_level(target)
    assert (result.admitted, result.rejected, result.failed) == (1, 2, 0)
    assert result.retry_after_s == 1.0


@dataclass
class StopsTheSecond:
    """Admits every stream; the second admitted is stopped once it has
    sent a second of audio."""

    admitted: int = 0

    async def admit(self, start: StreamStart) -> StreamTracker | Refusal:
        self.admitted += 1
        return Stopping() if self.admitted == 2 else NoTracker()


@dataclass
class Stopping:
    heard_s: float = 0.0

    async def audio(self, seconds: float) -> str | None:
        self.heard_s += seconds
        return "quota used up" if self.heard_s >= 1.0 else None

    async def ended(self) -> None:
        return None


async def test_a_stream_the_server_closes_fails_and_the_others_finish(
    lexicon: Lexicon, tmp_path: Path,
) -> None:
    async with running_server(lexicon, hooks=StopsTheSecond()) as running:
        result = await fast_level(Target(url=running.url, api_key=KEY))
    streams, utterances = parsed(result, tmp_path / "records.jsonl")
    assert (result.admitted, result.rejected, result.failed) == (3, 0, 1)
    [(reason, count)] = result.failures.items()
    assert count == 1 and reason.startswith("closed")
    failed = [s for s in streams if s.close_code != 1000]
    assert len(failed) == 1 and failed[0].close_code == int(
        reason.split()[1])
    finished = [u for u in utterances if u.stream_id != failed[0].stream_id]
    assert finished and all(u.hypothesis == u.reference for u in finished)


@pytest.mark.parametrize(("flags", "named"), [
    (["--streams", "0"], "--streams"),
    (["--steps", "10,x"], "--steps"),
    (["--streams", "2", "--steps", "3"], "--steps"),
    (["--duration", "0"], "--duration"),
    (["--ramp", "-1"], "--ramp"),
    (["--chunk-ms", "5"], "--chunk-ms"),
    (["--url", "http://x"], "--url"),
    (["--grpc", "nowhere"], "--grpc"),
    (["--dialect", "whisper"], "--dialect"),
    (["--fixture", "nope"], "--fixture"),
    (["--fixture", "silence"], "--fixture"),
    (["--endpointing-ms", "-5"], "--endpointing-ms"),
    (["--frobnicate"], "--frobnicate"),
])
def test_bad_flags_exit_2_naming_the_flag(
    flags: list[str], named: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(flags)
    assert exited.value.code == 2
    assert named in capsys.readouterr().err


async def test_the_command_at_capacity_writes_records_summary_and_plot(
    tmp_path: Path,
) -> None:
    """A service process capped at one stream: the command's records,
    summary JSON, table and plot say one admitted, two rejected."""
    env = {"SPEECH_API_KEYS": KEY, "CH04_LOAD_S": "0",
           "CH04_WARMUP_S": "0"}
    async with running_service(
            ("-m", "ch04_streaming", "--port", "0", "--max-streams", "1"),
            env) as service:
        await wait_until_ready(service.port)
        code = await asyncio.wait_for(asyncio.to_thread(main, [
            "--url", f"ws://127.0.0.1:{service.port}", "--api-key", KEY,
            "--streams", "3", "--duration", "6", "--ramp", "0.2",
            "--speed", "4", "--fixture", "quick_brown_fox",
            "--records", str(tmp_path / "r.jsonl"),
            "--plot", str(tmp_path / "p.png"),
            "--summary-json", str(tmp_path / "s.json"), "--no-progress",
        ]), TIMEOUT_S)
    assert code == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    [level] = summary["levels"]
    assert (level["admitted"], level["rejected"], level["failed"]) == (
        1, 2, 0)
    assert summary["capacity"] == 0  # streams were refused
    records = read_records(tmp_path / "r.jsonl")
    assert sum(isinstance(r, StreamRecord) for r in records) == 3
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_summary_table_and_plot_show_every_level(
    lexicon: Lexicon, tmp_path: Path,
) -> None:
    drawn, hidden = io.StringIO(), io.StringIO()
    async with running_server(lexicon) as running:
        target = Target(url=running.url, api_key=KEY)
        async with live_progress(Tally(), Console(
                file=drawn, force_terminal=True, width=100)):
            first = await fast_level(target, 1, duration_s=5.0)
        async with live_progress(Tally(), Console(file=hidden)):
            second = await fast_level(target, 2, duration_s=5.0)
        results = [first, second]
    assert "completed" in drawn.getvalue()
    assert hidden.getvalue() == ""  # not a terminal: nothing drawn
    console = Console(record=True, width=140)
    console.print(summary_table(results))
    text = console.export_text()
    assert "capacity: 2 streams" in text
    assert capacity(results) == 2
    plot(results, tmp_path / "levels.png")
    png = (tmp_path / "levels.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
