"""Turn a streamed fixture's results into chapter 11's SLI records.

The chapter 4 client times each final it receives; this module lines the
finals up with the manifest's utterances by time, so each record carries
the reference text the mock should have heard. An utterance the service
never finalised becomes a record with outcome `no_final`. The records
feed `python -m ch11_slo report`.
"""

from __future__ import annotations

from datetime import datetime

from ch04_streaming.client import HeardUtterance, Report
from ch11_slo.records import StreamRecord, UtteranceRecord
from examples.fixtures import AudioFixture, Utterance

SLACK_S = 0.25  # word times may differ this much between the two


def overlaps(heard: HeardUtterance, utterance: Utterance) -> bool:
    return (heard.first_word_s <= utterance.end + SLACK_S
            and heard.last_word_s >= utterance.start - SLACK_S)


def utterance_records(report: Report, fixture: AudioFixture,
                      stream_id: str, dialect: str,
                      paced: bool) -> list[UtteranceRecord]:
    records: list[UtteranceRecord] = []
    matched: set[int] = set()
    for heard in report.utterances:
        parts = [i for i, u in enumerate(fixture.utterances)
                 if overlaps(heard, u)]
        if not parts:
            continue  # words where the manifest has none: not scored here
        matched.update(parts)
        records.append(UtteranceRecord(
            stream_id=stream_id, utterance_index=len(records),
            outcome="ok",
            audio_seconds=round(max(heard.audio_s, 0.001), 3),
            first_result_seconds=heard.first_result_s,
            final_latency_seconds=heard.final_latency_s,
            processing_seconds=heard.processing_s,
            reference=" ".join(fixture.utterances[i].text for i in parts),
            hypothesis=heard.text, dialect=dialect, fixture_id=fixture.id,
            paced=paced,
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
