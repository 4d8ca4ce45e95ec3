"""Turn a streamed fixture's results into chapter 11's SLI records.

The chapter 4 client times each final it receives; this module lines the
finals up with the manifest's utterances by time, so each record carries
the reference text the mock should have heard, and dates its latencies
from the manifest's true word times rather than the ones the service
reported: time to first result from when the first word began to be
spoken, final latency from when the last word finished, both by the
client's audio clock. An utterance the service never finalised becomes
a record with outcome `no_final`. The records feed
`python -m ch11_slo report`.
"""

from __future__ import annotations

from datetime import datetime

from ch04_streaming.client import HeardUtterance, Report
from ch11_slo.records import StreamRecord, UtteranceRecord
from examples.fixtures import AudioFixture, Utterance, Word

SLACK_S = 0.25  # word times may differ this much between the two


def overlaps(heard: HeardUtterance, utterance: Utterance) -> bool:
    return (heard.first_word_s <= utterance.end + SLACK_S
            and heard.last_word_s >= utterance.start - SLACK_S)


def true_span(heard: HeardUtterance,
              words: list[Word]) -> tuple[float, float]:
    """The manifest's start of the heard first word and end of the heard
    last word: the nearest words, as a final may hold part of an
    utterance when the service splits it."""
    first = min(words, key=lambda w: abs(w.start - heard.first_word_s))
    last = min(words, key=lambda w: abs(w.end - heard.last_word_s))
    return first.start, max(last.end, first.start)


def since(at: float, then: float) -> float:
    # Clock resolution can put a result a hair before its audio.
    return max(0.0, at - then)


def utterance_records(report: Report, fixture: AudioFixture,
                      stream_id: str, dialect: str) -> list[UtteranceRecord]:
    records: list[UtteranceRecord] = []
    matched: set[int] = set()
    clock, paced = report.audio_clock, report.audio_clock.paced
    for heard in report.utterances:
        parts = [i for i, u in enumerate(fixture.utterances)
                 if overlaps(heard, u)]
        if not parts:
            continue  # words where the manifest has none: not scored here
        matched.update(parts)
        start, end = true_span(heard, [
            w for i in parts for w in fixture.utterances[i].words])
        first_at = heard.first_result_at
        records.append(UtteranceRecord(
            stream_id=stream_id, utterance_index=len(records),
            outcome="ok",
            audio_seconds=round(max(end - start, 0.001), 3),
            first_result_seconds=(None if first_at is None
                                  else since(first_at, clock.time_of(start))),
            final_latency_seconds=since(heard.final_at, clock.time_of(end)),
            processing_seconds=since(heard.final_at, clock.time_of(start)),
            reference=" ".join(fixture.utterances[i].text for i in parts),
            hypothesis=heard.text, dialect=dialect, fixture_id=fixture.id,
            paced=paced,
            result_gaps_seconds=tuple(
                round(gap, 4) for gap in heard.result_gaps_s),
        ))
    for i, missed in enumerate(fixture.utterances):
        if i not in matched:
            records.append(UtteranceRecord(
                stream_id=stream_id, utterance_index=len(records),
                outcome="no_final",
                audio_seconds=round(missed.end - missed.start, 3),
                first_result_seconds=None, final_latency_seconds=None,
                processing_seconds=None, reference=missed.text,
                hypothesis="", dialect=dialect, fixture_id=fixture.id,
                paced=paced,
            ))
    return records


def stream_record(report: Report, stream_id: str, started: datetime,
                  ended: datetime) -> StreamRecord:
    return StreamRecord(
        stream_id=stream_id, close_code=report.close_code or 1006,
        reconnected=False, started_at=started, ended_at=ended,
    )
