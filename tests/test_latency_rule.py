"""The 300 ms rule's command: a real service in this process, the
fixtures at the pace of speech, chapter 11's report per dialect.

Performance is not asserted here: only that the pipeline yields records
of every stream and utterance and a report with a verdict on each."""

from __future__ import annotations

from pathlib import Path

import pytest

from ch04_streaming.client import ClientAudio, Result
from ch11_slo.records import StreamRecord, UtteranceRecord, read_records
from ch11_slo.targets import tier_targets
from examples import latency_rule
from examples.fixtures import load_manifest
from examples.interim_revisions import NONE, Revisions, revisions


def test_runs_start_at_even_fractions_of_a_chunk() -> None:
    assert latency_rule.phase_offsets(4, chunk_ms=100) == pytest.approx(
        [0.0, 0.025, 0.05, 0.075])


def test_cut_audio_and_its_manifest_move_together() -> None:
    fox = load_manifest().get("quick_brown_fox")
    audio = ClientAudio(bytes(2 * 16_000), "linear16", 16_000)  # 1 s
    cut = latency_rule.cut(audio, 0.025)
    assert len(cut.payload) == len(audio.payload) - 2 * 400
    moved = latency_rule.earlier(fox, 0.025)
    assert moved.utterances[0].start == pytest.approx(
        fox.utterances[0].start - 0.025)
    assert moved.words[-1].end == pytest.approx(fox.words[-1].end - 0.025)


def test_interim_words_the_final_changes_are_counted() -> None:
    counted = revisions([
        Result("the", False, 0.1),
        Result("the quack", False, 0.1),  # "quack" is corrected
        Result("the quick brown", False, 0.1),
        Result("the quick brown fox", True, 0.3),
        Result("", False, 0.1),  # empty interims show nothing
        Result("jumps over", False, 0.1),
        Result("jumps", True, 0.3),  # "over" is taken back
    ])
    assert counted == Revisions(interims=4, revised=2, words=8,
                                wrong_words=2)
    assert counted.wrong_word_share == pytest.approx(0.25)
    assert revisions([]) == NONE


def test_the_command_writes_records_and_judges_each_dialect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    records_path = tmp_path / "records.jsonl"
    code = latency_rule.main(["--runs", "2", "--fixture", "living_room",
                              "--records", str(records_path)])
    assert code in (0, 1)  # whether the rule holds is not tested here
    out = capsys.readouterr().out
    for dialect in latency_rule.DIALECT_NAMES:
        assert f"300 ms rule, {dialect}: " in out
    assert out.count("Tier voice-ai") == 2
    records = read_records(records_path)
    streams = [r for r in records if isinstance(r, StreamRecord)]
    utterances = [r for r in records if isinstance(r, UtteranceRecord)]
    assert len(streams) == 4  # two runs in each dialect
    assert all(s.close_code == 1000 for s in streams)
    assert len(utterances) == 4
    assert all(u.paced and u.fixture_id == "living_room"
               for u in utterances)
    assert all(u.first_result_seconds is not None for u in utterances)
    figures = latency_rule.figures(
        records, dict.fromkeys(latency_rule.DIALECT_NAMES, NONE),
        tier_targets("voice-ai"))
    for dialect in latency_rule.DIALECT_NAMES:
        assert figures[f"utterances_{dialect}"] == 2
        assert f"first_result_p95_ms_{dialect}" in figures
        assert 0.0 <= figures[f"goodput_{dialect}"] <= 1.0
