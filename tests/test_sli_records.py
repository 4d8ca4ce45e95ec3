"""Finals are lined up with the manifest's utterances by time."""

from __future__ import annotations

from ch04_streaming.client import HeardUtterance, Report
from examples.fixtures import load_manifest
from examples.sli_records import utterance_records


def heard(text: str, first: float, last: float) -> HeardUtterance:
    return HeardUtterance(text, first, last, 0.1, 0.3, last - first + 0.3)


def test_merged_finals_and_missed_utterances_are_scored() -> None:
    call = load_manifest().get("support_call")
    first, second, third = call.utterances[:3]
    report = Report(utterances=[
        heard(first.text, first.start, first.end),
        # The service heard the next two as one utterance.
        heard(f"{second.text} {third.text}", second.start, third.end),
    ])
    records = utterance_records(report, call, "s1", "deepgram", paced=True)
    assert all(r.paced for r in records)
    ok = [r for r in records if r.outcome == "ok"]
    assert [r.reference for r in ok] == [
        first.text, f"{second.text} {third.text}"]
    missed = [r for r in records if r.outcome == "no_final"]
    assert len(missed) == len(call.utterances) - 3
    assert missed[0].reference == call.utterances[3].text
    assert [r.utterance_index for r in records] == list(range(len(records)))


def test_words_where_the_manifest_has_none_are_not_scored() -> None:
    silence = load_manifest().get("quick_brown_fox")
    report = Report(utterances=[heard("uh", 0.0, 0.2)])
    records = utterance_records(report, silence, "s2", "assemblyai",
                                paced=False)
    assert [r.outcome for r in records] == ["no_final"]
