"""Streaming SLIs: percentiles, corpus WER, goodput, drops, PromQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

import ch11_slo
from ch04_streaming.metrics import LATENCY_BUCKETS
from ch11_slo.invalid import InvalidField
from ch11_slo.records import (
    Outcome,
    Record,
    StreamRecord,
    UtteranceRecord,
)
from ch11_slo.sli import (
    drop_rate,
    goodput,
    measure_slis,
    percentiles,
    promql_slis,
    reconnection_rate,
    word_errors,
)
from ch11_slo.targets import TierTargets, tier_targets

VOICE_AI = tier_targets("voice-ai")
AGENT = tier_targets("interactive-agent")
START = datetime(2026, 11, 27, 10, tzinfo=UTC)


def utterance(index: int = 0, first: float | None = 0.2,
              final: float | None = 0.5, outcome: Outcome = "ok",
              reference: str = "book a table for two",
              hypothesis: str | None = None,
              audio: float = 3.0) -> UtteranceRecord:
    finished = outcome == "ok"
    return UtteranceRecord(
        stream_id="s1", utterance_index=index, outcome=outcome,
        audio_seconds=audio, first_result_seconds=first,
        final_latency_seconds=final if finished else None,
        processing_seconds=audio / 2 if finished else None,
        reference=reference,
        hypothesis=reference if hypothesis is None else hypothesis)


def stream(code: int, reconnected: bool = False) -> StreamRecord:
    return StreamRecord(stream_id=f"s{code}-{reconnected}", close_code=code,
                        reconnected=reconnected, started_at=START,
                        ended_at=START)


def test_percentiles_are_nearest_rank() -> None:
    values = [ms / 1000 for ms in range(1, 101)]
    assert percentiles(values) == percentiles(values[::-1])
    result = percentiles(values)
    assert result is not None
    assert (result.p50, result.p95, result.p99) == (0.05, 0.095, 0.099)


def test_no_result_counts_as_later_than_any() -> None:
    one_missing = percentiles([0.1] * 19 + [None])
    two_missing = percentiles([0.1] * 18 + [None, None])
    assert one_missing is not None and two_missing is not None
    assert one_missing.p95 == 0.1  # 19 of 20 is exactly 95%
    assert math.isinf(two_missing.p95)


def test_no_utterances_have_no_percentiles() -> None:
    assert percentiles([]) is None


def test_wer_is_summed_over_the_corpus_not_averaged() -> None:
    # One wrong word in one short utterance, nine right in a long one:
    # averaging per-utterance WER (100% and 0%) would say 50%.
    short = utterance(0, reference="yes", hypothesis="no")
    long = utterance(1, reference="one two three four five six seven"
                                  " eight nine")
    errors = word_errors([short, long])
    assert errors is not None
    assert (errors.substitutions, errors.reference_words) == (1, 10)
    assert errors.rate == pytest.approx(0.1)


def test_wer_counts_deletions_and_insertions() -> None:
    errors = word_errors([
        utterance(0, reference="book a table", hypothesis="book table"),
        utterance(1, reference="for two", hypothesis="uh for two"),
    ])
    assert errors is not None
    assert (errors.deletions, errors.insertions) == (1, 1)
    assert errors.rate == pytest.approx(2 / 5)


def test_wer_ignores_case_and_punctuation() -> None:
    errors = word_errors([utterance(reference="Book a table, for two.",
                                    hypothesis="book a table for two")])
    assert errors is not None and errors.rate == 0


def test_wer_leaves_out_utterances_without_a_final() -> None:
    lost = utterance(1, first=None, outcome="no_final", hypothesis="")
    errors = word_errors([utterance(0), lost])
    assert errors is not None
    assert (errors.rate, errors.reference_words) == (0, 5)
    assert word_errors([lost]) is None


def test_goodput_needs_every_target_met_at_once() -> None:
    utterances = [
        utterance(0, first=0.2, final=0.5),  # good
        utterance(1, first=0.2, final=0.9),  # final too late
        utterance(2, first=0.4, final=0.5),  # first result too late
        utterance(3, first=None, final=0.5),  # no result before final
        utterance(4, first=0.1, outcome="no_final"),
        utterance(5, first=0.3, final=0.8),  # on both limits: good
    ]
    assert goodput(utterances, VOICE_AI) == pytest.approx(2 / 6)


def test_goodput_depends_on_the_tier() -> None:
    utterances = [utterance(0, first=0.05), utterance(1, first=0.2)]
    assert goodput(utterances, VOICE_AI) == 1.0
    assert goodput(utterances, AGENT) == 0.5


def test_no_utterances_have_no_goodput() -> None:
    assert goodput([], VOICE_AI) is None


def test_drops_are_closes_other_than_normal_or_going_away() -> None:
    streams = [stream(1000), stream(1001), stream(1006, reconnected=True),
               stream(1011)]
    assert drop_rate(streams) == 0.5
    assert reconnection_rate(streams) == 0.5


def test_without_drops_there_is_no_reconnection_rate() -> None:
    assert reconnection_rate([stream(1000)]) is None
    assert drop_rate([]) is None


def test_measure_slis_reads_a_whole_run() -> None:
    records: list[Record] = [
        utterance(0, first=0.1, final=0.4, audio=2.0),
        utterance(1, first=0.2, final=0.6, audio=4.0),
        utterance(2, first=0.3, outcome="dropped"),
        stream(1000), stream(1006, reconnected=True),
    ]

    slis = measure_slis(records, VOICE_AI)

    assert (slis.utterances, slis.streams) == (3, 2)
    assert slis.first_result is not None and slis.final_latency is not None
    assert (slis.first_result.p50, slis.first_result.p99) == (0.2, 0.3)
    assert math.isinf(slis.final_latency.p95)  # the dropped utterance
    assert (slis.rtf_p95, slis.rtf_mean) == (0.5, 0.5)
    assert slis.goodput == pytest.approx(2 / 3)
    assert slis.word_errors is not None and slis.word_errors.rate == 0
    assert (slis.drop_rate, slis.reconnection) == (0.5, 1.0)


def test_an_empty_run_measures_nothing() -> None:
    slis = measure_slis([], VOICE_AI)
    assert slis.first_result is None and slis.rtf_p95 is None
    assert slis.rtf_mean is None and slis.word_errors is None
    assert slis.goodput is None and slis.drop_rate is None


def test_promql_reads_chapter_4_histograms_at_the_tier_target() -> None:
    voice = promql_slis(VOICE_AI, window="30m")
    agent = promql_slis(AGENT)
    assert voice["first_result_p95"] == (
        "histogram_quantile(0.95, sum by (le)"
        " (rate(speech_first_result_seconds_bucket[30m])))")
    assert 'speech_first_result_seconds_bucket{le="0.3"}[30m]' in (
        voice["first_result_within_target_ratio"])
    assert 'speech_first_result_seconds_bucket{le="0.1"}[5m]' in (
        agent["first_result_within_target_ratio"])
    assert 'speech_final_latency_seconds_bucket{le="0.8"}' in (
        agent["final_latency_within_target_ratio"])
    assert agent["final_latency_within_target_ratio"].endswith(
        "/ (sum(rate(speech_final_latency_seconds_count[5m])) > 0)")
    assert agent["connection_drop_ratio"] == (
        "(sum(rate(speech_streams_errors_total[5m])) or vector(0))\n"
        "/ (sum(rate(speech_streams_total[5m])) > 0)")


def test_every_target_is_a_bucket_bound_of_chapter_4() -> None:
    for targets in (VOICE_AI, AGENT):
        assert targets.first_result_seconds in LATENCY_BUCKETS
        assert targets.final_latency_seconds in LATENCY_BUCKETS


def test_a_target_between_buckets_has_no_promql_ratio() -> None:
    between = TierTargets.model_validate(
        VOICE_AI.model_dump() | {"first_result_seconds": 0.25})
    with pytest.raises(InvalidField) as caught:
        promql_slis(between)
    assert caught.value.field == "first_result_seconds"


def test_the_alerting_spec_judges_latency_at_the_voice_ai_targets() -> None:
    spec = Path(ch11_slo.__file__).with_name("specs") / "streaming.yaml"
    text = spec.read_text()
    for metric, seconds in (
        ("speech_first_result_seconds", VOICE_AI.first_result_seconds),
        ("speech_final_latency_seconds", VOICE_AI.final_latency_seconds),
    ):
        assert f'{metric}_bucket{{le="{seconds}"}}' in text
