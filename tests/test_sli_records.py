"""Finals are lined up with the manifest's utterances by time, and timed
from the manifest's word times by the client's audio clock."""

from __future__ import annotations

from typing import cast

import pytest

from ch04_streaming.client import (
    AudioClock,
    ClientDialect,
    Heard,
    HeardUtterance,
    Report,
    ResultTimer,
)
from examples.fixtures import load_manifest
from examples.sli_records import utterance_records

ORIGIN = 1_000.0  # client clock when capture began


def heard(text: str, first: float, last: float, first_result_at: float,
          final_at: float) -> HeardUtterance:
    """A final whose own timings are deliberately wrong, so that only
    timings taken from the manifest can pass."""
    return HeardUtterance(text, first, last, first_result_at, final_at,
                          first_result_s=9.0, final_latency_s=9.0,
                          processing_s=9.0)


def test_merged_finals_and_missed_utterances_are_scored() -> None:
    call = load_manifest().get("support_call")
    first, second, third = call.utterances[:3]
    clock = AudioClock(paced=True, origin=ORIGIN)
    report = Report(audio_clock=clock, utterances=[
        heard(first.text, first.start, first.end, ORIGIN + first.start + 0.2,
              ORIGIN + first.end + 0.3),
        # The service heard the next two as one utterance.
        heard(f"{second.text} {third.text}", second.start, third.end,
              ORIGIN + second.start + 0.2, ORIGIN + third.end + 0.3),
    ])
    records = utterance_records(report, call, "s1", "deepgram")
    assert all(r.paced for r in records)
    ok = [r for r in records if r.outcome == "ok"]
    assert [r.reference for r in ok] == [
        first.text, f"{second.text} {third.text}"]
    assert ok[1].audio_seconds == pytest.approx(third.end - second.start,
                                                abs=0.001)
    missed = [r for r in records if r.outcome == "no_final"]
    assert len(missed) == len(call.utterances) - 3
    assert missed[0].reference == call.utterances[3].text
    assert [r.utterance_index for r in records] == list(range(len(records)))


def test_paced_latencies_run_from_the_manifests_spoken_words() -> None:
    fox = load_manifest().get("quick_brown_fox")
    (utterance,) = fox.utterances
    clock = AudioClock(paced=True, origin=ORIGIN)
    # The service places the words 30 ms late; the manifest is the truth.
    report = Report(audio_clock=clock, utterances=[heard(
        utterance.text, utterance.start + 0.03, utterance.end + 0.03,
        ORIGIN + utterance.start + 0.25, ORIGIN + utterance.end + 0.4)])
    (record,) = utterance_records(report, fox, "s3", "deepgram")
    assert record.first_result_seconds == pytest.approx(0.25)
    assert record.final_latency_seconds == pytest.approx(0.4)
    assert record.processing_seconds == pytest.approx(
        utterance.end - utterance.start + 0.4)


def test_a_final_of_part_of_an_utterance_is_timed_from_its_own_words(
) -> None:
    fox = load_manifest().get("quick_brown_fox")
    words = fox.utterances[0].words
    clock = AudioClock(paced=True, origin=ORIGIN)
    # The service split the sentence: this final starts at its 4th word.
    tail = words[3:]
    report = Report(audio_clock=clock, utterances=[heard(
        " ".join(w.word for w in tail), tail[0].start, tail[-1].end,
        ORIGIN + tail[0].start + 0.2, ORIGIN + tail[-1].end + 0.3)])
    (record,) = utterance_records(report, fox, "s4", "deepgram")
    assert record.first_result_seconds == pytest.approx(0.2)
    assert record.final_latency_seconds == pytest.approx(0.3)


def test_unpaced_latencies_run_from_when_the_audio_was_sent() -> None:
    fox = load_manifest().get("quick_brown_fox")
    (utterance,) = fox.utterances
    clock = AudioClock(paced=False)
    # As fast as the server takes it: one 100 ms chunk every 10 ms.
    chunks = int(fox.duration_s * 10) + 1
    for n in range(chunks):
        clock.record((n + 1) * 0.1, at=ORIGIN + n * 0.01)
    sent_first = clock.time_of(utterance.start)
    sent_last = clock.time_of(utterance.end)
    report = Report(audio_clock=clock, utterances=[heard(
        utterance.text, utterance.start, utterance.end, sent_first + 0.05,
        sent_last + 0.1)])
    (record,) = utterance_records(report, fox, "s5", "assemblyai")
    assert not record.paced
    assert record.first_result_seconds == pytest.approx(0.05)
    assert record.final_latency_seconds == pytest.approx(0.1)


def test_words_where_the_manifest_has_none_are_not_scored() -> None:
    silence = load_manifest().get("quick_brown_fox")
    report = Report(utterances=[heard("uh", 0.0, 0.2, 0.1, 0.3)])
    records = utterance_records(report, silence, "s2", "assemblyai")
    assert [r.outcome for r in records] == ["no_final"]


class SilentDialect:
    """A dialect is only asked to read messages; `heard` is called
    directly here, as a gRPC client does."""

    def heard(self, message: object) -> None:
        return None


def test_the_gaps_between_an_utterances_results_are_recorded() -> None:
    clock = AudioClock(paced=True, origin=ORIGIN)
    report = Report(audio_clock=clock)
    timer = ResultTimer(cast(ClientDialect, SilentDialect()), report)
    for text, final, at in (("call", False, ORIGIN + 1.0),
                            ("call me", False, ORIGIN + 1.25),
                            ("call me back", True, ORIGIN + 1.75)):
        timer.heard(Heard(text, final, 0.5, 0.9, segment=0.5), at)
    timer.heard(Heard("", False, None, None, segment=2.0), ORIGIN + 1.8)
    [utterance] = report.utterances
    assert utterance.result_gaps_s == pytest.approx((0.25, 0.5))
    assert utterance.first_result_at == ORIGIN + 1.0
    call = load_manifest().get("support_call")
    first = call.utterances[0]
    report.utterances = [HeardUtterance(
        first.text, first.start, first.end, ORIGIN + first.start + 0.2,
        ORIGIN + first.end + 0.3, 0.2, 0.3, 0.5, (0.25, 0.5))]
    [record, *_] = utterance_records(report, call, "s1", "deepgram")
    assert record.result_gaps_seconds == (0.25, 0.5)
