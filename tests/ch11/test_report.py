"""The SLI report against tier targets, and the targets file."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ch11_slo.invalid import InvalidField
from ch11_slo.records import Record, StreamRecord, UtteranceRecord
from ch11_slo.records import write_records as save
from ch11_slo.report import main
from ch11_slo.targets import DEFAULT_TARGETS, load_targets, tier_targets

START = datetime(2026, 11, 27, 10, tzinfo=UTC)


def run(first: float, count: int = 20) -> list[Record]:
    """`count` good utterances whose first result takes `first` s."""
    records: list[Record] = [
        UtteranceRecord(
            stream_id="s1", utterance_index=i, outcome="ok",
            audio_seconds=3.0, first_result_seconds=first,
            final_latency_seconds=0.45, processing_seconds=1.2,
            reference="turn the lights off", hypothesis="turn the lights off")
        for i in range(count)
    ]
    records.append(StreamRecord(
        stream_id="s1", close_code=1000, reconnected=False,
        started_at=START, ended_at=START))
    records.append(StreamRecord(
        stream_id="s2", close_code=1006, reconnected=True,
        started_at=START, ended_at=START))
    return records


def rows(output: str) -> dict[str, list[str]]:
    """SLI name -> the other cells of its row, from the printed table."""
    cells = [re.split(r"\s{2,}", line) for line in output.splitlines()[3:]]
    return {row[0]: row[1:] for row in cells}


def test_a_healthy_run_meets_every_voice_ai_target(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "records.jsonl"
    # One stream in a hundred may drop: 1 of 2 is too many, so this
    # run has 99 orderly closes besides the drop.
    records = run(first=0.2) + [
        StreamRecord(stream_id=f"ok{i}", close_code=1000,
                     reconnected=False, started_at=START, ended_at=START)
        for i in range(98)
    ]
    save(path, records)

    status = main([str(path), "--tier", "voice-ai"])

    output = capsys.readouterr().out
    table = rows(output)
    assert status == 0
    assert output.startswith("Tier voice-ai (voice AI")
    assert "20 utterances, 100 streams" in output
    assert table["time to first result p95"] == ["200 ms", "<= 300 ms",
                                                 "pass"]
    assert table["final latency p95"] == ["450 ms", "<= 800 ms", "pass"]
    assert table["real-time factor p95"] == ["0.400", "< 1.000", "pass"]
    assert table["word error rate (corpus)"] == [
        "0.0% of 80 words", "<= 10.0%", "pass"]
    assert table["goodput"] == ["100.0%", ">= 95.0%", "pass"]
    assert table["connection drop rate"] == ["1.0%", "<= 1.0%", "pass"]
    assert table["reconnection success"] == ["100.0%", ">= 99.0%", "pass"]
    assert "FAIL" not in output


def test_the_same_run_fails_the_interactive_agent_tier(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "records.jsonl"
    save(path, run(first=0.2))

    status = main([str(path), "--tier", "interactive-agent"])

    table = rows(capsys.readouterr().out)
    assert status == 1
    assert table["time to first result p95"] == ["200 ms", "<= 100 ms",
                                                 "FAIL"]
    assert table["goodput"] == ["0.0%", ">= 95.0%", "FAIL"]
    assert table["reconnection success"][-1] == "pass"


def test_percentiles_without_a_target_have_no_verdict(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "records.jsonl"
    save(path, run(first=0.2))

    main([str(path)])

    table = rows(capsys.readouterr().out)
    assert table["time to first result p99"] == ["200 ms"]
    assert table["real-time factor mean"] == ["0.400"]


def test_an_sli_without_data_is_not_a_pass(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "records.jsonl"
    utterances = [r for r in run(first=0.2)
                  if isinstance(r, UtteranceRecord)]
    save(path, utterances)

    status = main([str(path)])

    table = rows(capsys.readouterr().out)
    assert status == 1
    assert table["connection drop rate"] == ["no data", "<= 1.0%"]


def test_a_run_without_utterances_has_no_latencies(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "records.jsonl"
    save(path, [r for r in run(first=0.2) if isinstance(r, StreamRecord)])

    assert main([str(path)]) == 1

    output = capsys.readouterr().out
    table = rows(output)
    assert "0 utterances, 2 streams" in output
    assert table["time to first result p50"] == ["no data"]
    assert table["final latency p95"] == ["no data", "<= 800 ms"]
    assert table["goodput"] == ["no data", ">= 95.0%"]


def test_utterances_that_never_finish_show_as_never(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "records.jsonl"
    lost = UtteranceRecord(
        stream_id="s9", utterance_index=0, outcome="dropped",
        audio_seconds=3.0, first_result_seconds=None,
        final_latency_seconds=None, processing_seconds=None,
        reference="are you there", hypothesis="")
    save(path, [lost])

    assert main([str(path)]) == 1

    table = rows(capsys.readouterr().out)
    assert table["final latency p95"] == ["never", "<= 800 ms", "FAIL"]
    assert table["word error rate (corpus)"] == ["no data", "<= 10.0%"]


def test_markdown_output_is_a_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "records.jsonl"
    save(path, run(first=0.05))

    main([str(path), "--tier", "interactive-agent", "--markdown"])

    lines = capsys.readouterr().out.splitlines()
    assert lines[2:4] == ["| SLI | measured | target | result |",
                          "|---|---|---|---|"]
    assert "| goodput | 100.0% | >= 95.0% | pass |" in lines


def test_a_bad_record_stops_the_report_with_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"type": "stream"}\n')

    status = main([str(path)])

    assert status == 2
    assert capsys.readouterr().err.startswith(
        f"error: {path}:1: stream_id: Field required")


def test_a_missing_file_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "absent.jsonl")]) == 2
    assert "absent.jsonl" in capsys.readouterr().err


def test_an_unknown_tier_lists_the_known_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "records.jsonl"
    save(path, run(first=0.2))

    assert main([str(path), "--tier", "batch"]) == 2

    assert capsys.readouterr().err == (
        "error: tier: unknown tier 'batch' (known: interactive-agent,"
        " voice-ai)\n")


def test_the_chapter_targets_are_the_books_numbers() -> None:
    agent, voice = (tier_targets(n) for n in ("interactive-agent",
                                              "voice-ai"))
    assert (agent.first_result_seconds, voice.first_result_seconds) == (
        0.1, 0.3)
    assert agent.final_latency_seconds == voice.final_latency_seconds == 0.8
    assert set(load_targets()) == {"interactive-agent", "voice-ai"}


def targets_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.toml"
    path.write_text(text)
    return path


def test_a_target_out_of_range_names_its_field(tmp_path: Path) -> None:
    good = DEFAULT_TARGETS.read_text()
    path = targets_file(tmp_path, good.replace("max_wer = 0.10",
                                               "max_wer = 1.5", 1))
    with pytest.raises(InvalidField) as caught:
        load_targets(path)
    assert caught.value.field == "tiers.interactive-agent.max_wer"


@pytest.mark.parametrize(("text", "field"), [
    ("[tiers.x]\ndescription = 'x'\n", "tiers.x.first_result_seconds"),
    ("[tiers.x]\nttfr = 1\n", "tiers.x.ttfr"),
    ("tiers = 3\n", "tiers"),
    ("[tiers]\nx = 3\n", "tiers.x"),
    ("[tiers.x\n", "targets.toml"),
])
def test_a_bad_targets_file_names_the_field(
        tmp_path: Path, text: str, field: str) -> None:
    path = targets_file(tmp_path, text)
    with pytest.raises(InvalidField) as caught:
        load_targets(path)
    assert caught.value.field.endswith(field)
