"""Per-utterance and per-stream records: round trip and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ch11_slo.records import (
    InvalidRecord,
    Record,
    StreamRecord,
    UtteranceRecord,
    read_records,
    write_records,
)

UTTERANCE = {
    "type": "utterance", "stream_id": "s1", "utterance_index": 0,
    "outcome": "ok", "audio_seconds": 3.0, "first_result_seconds": 0.21,
    "final_latency_seconds": 0.48, "processing_seconds": 3.4,
    "reference": "book a table for two", "hypothesis": "book a table for two",
}
STREAM = {
    "type": "stream", "stream_id": "s1", "close_code": 1000,
    "reconnected": False, "started_at": "2026-11-27T10:00:00Z",
    "ended_at": "2026-11-27T10:01:00Z",
}


def write_lines(path: Path, *objects: object) -> Path:
    path.write_text("".join(
        (o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects
    ))
    return path


def refusal(path: Path, *objects: object) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        read_records(write_lines(path, *objects))
    return caught.value


def test_records_survive_a_round_trip(tmp_path: Path) -> None:
    records: list[Record] = [
        UtteranceRecord(
            stream_id="s1", utterance_index=0, outcome="ok",
            audio_seconds=3.0, first_result_seconds=0.2,
            final_latency_seconds=0.5, processing_seconds=3.5,
            reference="hello there", hypothesis="hello there",
            dialect="deepgram", fixture_id="greeting"),
        UtteranceRecord(
            stream_id="s1", utterance_index=1, outcome="no_final",
            audio_seconds=2.0, first_result_seconds=None,
            final_latency_seconds=None, processing_seconds=None,
            reference="goodbye", hypothesis=""),
        StreamRecord(
            stream_id="s1", close_code=1006, reconnected=True,
            started_at=datetime(2026, 11, 27, 10, tzinfo=UTC),
            ended_at=datetime(2026, 11, 27, 10, 5, tzinfo=UTC)),
    ]
    path = tmp_path / "run" / "records.jsonl"

    write_records(path, records)

    assert read_records(path) == records
    assert all('"type"' in line for line in path.read_text().splitlines())


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.jsonl", UTTERANCE, "", "  ", STREAM)
    assert [r.type for r in read_records(path)] == ["utterance", "stream"]


def test_malformed_json_names_its_line(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl", UTTERANCE, '{"type": "utter')
    assert (error.line, error.field) == (2, "line")
    assert str(error).startswith(f"{tmp_path / 'r.jsonl'}:2: line:")


def test_a_json_value_that_is_not_an_object_is_refused(
        tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl", "[1, 2]")
    assert (error.line, error.field) == (1, "line")


def test_unknown_record_type_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl", STREAM,
                    {**UTTERANCE, "type": "utterence"})
    assert (error.line, error.field) == (2, "type")
    assert "'utterance' or 'stream'" in error.problem


def test_a_record_without_a_type_is_refused(tmp_path: Path) -> None:
    record = {k: v for k, v in UTTERANCE.items() if k != "type"}
    error = refusal(tmp_path / "r.jsonl", record)
    assert (error.line, error.field) == (1, "type")


def test_missing_field_is_named(tmp_path: Path) -> None:
    record = {k: v for k, v in UTTERANCE.items() if k != "hypothesis"}
    error = refusal(tmp_path / "r.jsonl", UTTERANCE | {"utterance_index": 1},
                    STREAM, record)
    assert (error.line, error.field) == (3, "hypothesis")
    assert "required" in error.problem


@pytest.mark.parametrize("field", [
    "first_result_seconds", "final_latency_seconds", "processing_seconds",
])
def test_negative_durations_are_refused(tmp_path: Path, field: str) -> None:
    error = refusal(tmp_path / "r.jsonl", UTTERANCE | {field: -0.01})
    assert (error.line, error.field) == (1, field)
    assert "greater than or equal to 0" in error.problem


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_durations_must_be_finite(tmp_path: Path, value: str) -> None:
    line = json.dumps(UTTERANCE).replace('"final_latency_seconds": 0.48',
                                         f'"final_latency_seconds": {value}')
    error = refusal(tmp_path / "r.jsonl", line)
    assert error.field == "final_latency_seconds"


def test_audio_must_last_some_time(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl", UTTERANCE | {"audio_seconds": 0})
    assert error.field == "audio_seconds"


def test_numbers_in_strings_are_not_guessed_at(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl", UTTERANCE | {"utterance_index": "3"})
    assert error.field == "utterance_index"


def test_a_misspelt_field_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl", UTTERANCE | {"dialekt": "x"})
    assert error.field == "dialekt"


def test_an_ok_utterance_needs_its_final_timed(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl",
                    UTTERANCE | {"final_latency_seconds": None})
    assert error.field == "final_latency_seconds"
    assert error.problem == "required when outcome is 'ok'"


def test_an_utterance_without_final_has_no_final_latency(
        tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl", UTTERANCE | {
        "outcome": "no_final", "processing_seconds": None})
    assert error.field == "final_latency_seconds"
    assert error.problem == "must be null when outcome is 'no_final'"


def test_an_unknown_outcome_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl", UTTERANCE | {"outcome": "late"})
    assert error.field == "outcome"


def test_a_reference_needs_a_word(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl", UTTERANCE | {"reference": " ?"})
    assert (error.field, error.problem) == ("reference",
                                            "needs at least one word")


def test_a_stream_cannot_end_before_it_starts(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl",
                    STREAM | {"ended_at": "2026-11-27T09:59:59Z"})
    assert (error.field, error.problem) == ("ended_at", "before started_at")


def test_stream_times_need_a_time_zone(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl",
                    STREAM | {"started_at": "2026-11-27T10:00:00"})
    assert error.field == "started_at"


def test_close_codes_are_websocket_codes(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl", STREAM | {"close_code": 200})
    assert error.field == "close_code"


def test_a_repeated_utterance_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl", UTTERANCE, STREAM, UTTERANCE)
    assert (error.line, error.field) == (3, "utterance_index")
    assert error.problem == "duplicate of the record at line 1"


def test_a_repeated_stream_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path / "r.jsonl", STREAM, STREAM)
    assert (error.line, error.field) == (2, "stream_id")


def test_a_misspelt_required_field_is_named_as_written(
        tmp_path: Path) -> None:
    record = {k: v for k, v in UTTERANCE.items() if k != "hypothesis"}
    error = refusal(tmp_path / "r.jsonl", record | {"hypotesis": "x"})
    assert (error.field, error.problem) == (
        "hypotesis", "Extra inputs are not permitted")
