"""The latency SLIs an LLM API names, in a speech API's terms: the gap
between consecutive results (inter-token latency), time per output word
(time per output token), and end-to-end latency, first word to final."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from ch11_slo.records import UtteranceRecord, read_records
from ch11_slo.report import main
from ch11_slo.sli import inter_result_gaps, times_per_word
from tests.ch11.test_report import rows


def utterance(index: int, gaps: tuple[float, ...], first: float | None,
              processing: float | None, heard: str) -> UtteranceRecord:
    return UtteranceRecord(
        stream_id="s1", utterance_index=index,
        outcome="ok" if processing is not None else "no_final",
        audio_seconds=2.0, first_result_seconds=first,
        final_latency_seconds=None if processing is None else 0.4,
        processing_seconds=processing, reference="turn the lights off",
        hypothesis=heard, result_gaps_seconds=gaps)


def test_gaps_and_time_per_word_come_from_each_utterance() -> None:
    records = [
        utterance(0, (0.25, 0.5), 0.2, 1.7, "turn the lights off"),
        utterance(1, (0.1,), 0.3, 0.8, "lights"),  # one word: no TPOT
        utterance(2, (), None, None, ""),  # never finished
    ]
    assert inter_result_gaps(records) == [0.25, 0.5, 0.1]
    # (1.7 - 0.2) s for the three words after the first
    assert times_per_word(records) == pytest.approx([0.5])


def test_the_report_prints_the_three_latencies(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[
                                                   str]) -> None:
    path = tmp_path / "records.jsonl"
    records = [utterance(i, (0.25, 0.5), 0.2, 1.7, "turn the lights off")
               for i in range(4)]
    path.write_text("".join(r.model_dump_json() + "\n" for r in records))
    main([str(path)])
    table = rows(capsys.readouterr().out)
    assert table["inter-result gap p50"][0] == "250 ms"
    assert table["inter-result gap p95"][0] == "500 ms"
    assert table["time per output word p50"][0] == "500 ms"
    assert table["end-to-end (first word to final) p95"][0] == "1700 ms"


def test_gaps_are_read_from_a_record_file_and_a_negative_one_refused(
        tmp_path: Path) -> None:
    good = utterance(0, (0.25,), 0.2, 1.7, "turn the lights off")
    path = tmp_path / "records.jsonl"
    path.write_text(good.model_dump_json() + "\n")
    [read] = read_records(path)
    assert isinstance(read, UtteranceRecord)
    assert read.result_gaps_seconds == (0.25,)
    raw = json.loads(good.model_dump_json())
    raw["result_gaps_seconds"] = [-0.1]
    with pytest.raises(ValidationError):
        UtteranceRecord.model_validate_json(json.dumps(raw))
