"""Streaming SLIs from per-utterance records, and the same in PromQL.

Chapter 11, "Streaming-specific SLIs" and "Goodput". Latency SLIs are
percentiles of the time to first result and of final latency; quality
SLIs are corpus WER, the real-time factor and goodput, the share of
utterances that met every target at once (DistServe); reliability SLIs
are the share of streams that dropped and of drops the client recovered
from. Percentiles are nearest-rank, and an utterance that never got a
result counts as later than any that did: leaving it out would flatter
the very percentile that should show it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jiwer
import numpy as np

from ch04_streaming.metrics import LATENCY_BUCKETS, ORDERLY_CLOSES
from ch11_slo.invalid import InvalidField
from ch11_slo.records import Record, StreamRecord, UtteranceRecord
from ch11_slo.targets import TierTargets

QUANTILES = (50, 95, 99)
# Case and punctuation are not recognition errors: compare words only.
WORDS = jiwer.Compose([
    jiwer.ToLowerCase(),
    jiwer.SubstituteRegexes({r"[^\w\s]": ""}),
    jiwer.RemoveMultipleSpaces(),
    jiwer.Strip(),
    jiwer.ReduceToListOfListOfWords(),
])


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class WordErrors:
    """Edit counts summed over a corpus; `rate` is corpus WER."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def rate(self) -> float:
        edits = self.substitutions + self.deletions + self.insertions
        return edits / self.reference_words


# --8<-- [start:sli_taxonomy]
@dataclass(frozen=True)
class Slis:
    """Every SLI of one run; None where there was nothing to measure."""

    utterances: int
    streams: int
    # latency: first result (TTFT), result to result (inter-token),
    # per word (TPOT), first word to final (end to end), final after
    # the last word
    first_result: Percentiles | None
    inter_result: Percentiles | None
    time_per_word: Percentiles | None
    end_to_end: Percentiles | None
    final_latency: Percentiles | None
    # quality: accuracy, speed, and the share meeting every target
    word_errors: WordErrors | None
    rtf_p95: float | None
    rtf_mean: float | None
    goodput: float | None
    # reliability: connections lost, and won back
    drop_rate: float | None
    reconnection: float | None
# --8<-- [end:sli_taxonomy]


def percentiles(values: Sequence[float | None]) -> Percentiles | None:
    """Nearest-rank p50, p95, p99; a missing value is infinitely late."""
    if not values:
        return None
    data = np.array([math.inf if v is None else v for v in values])
    p50, p95, p99 = np.percentile(data, QUANTILES, method="inverted_cdf")
    return Percentiles(float(p50), float(p95), float(p99))


def real_time_factors(utterances: Sequence[UtteranceRecord]) -> list[float]:
    """Processing time over audio time, for utterances with a final."""
    # Paced audio takes its own duration to arrive: only audio sent as
    # fast as the service takes it shows how fast the service is.
    return [u.processing_seconds / u.audio_seconds for u in utterances
            if u.processing_seconds is not None and not u.paced]


# --8<-- [start:token_latencies]
def inter_result_gaps(utterances: Sequence[UtteranceRecord]) -> list[float]:
    """Seconds between consecutive results of an utterance: an LLM's
    inter-token latency, in a speech API's terms."""
    return [gap for u in utterances for gap in u.result_gaps_seconds]


def times_per_word(utterances: Sequence[UtteranceRecord]) -> list[float]:
    """From the first result to the final, per word after the first:
    an LLM's time per output token. Paced audio bounds it by the pace
    of speech: a word cannot be heard before it is spoken."""
    times = []
    for u in utterances:
        words = len(u.hypothesis.split())
        if (u.first_result_seconds is not None
                and u.processing_seconds is not None and words > 1):
            after_first = u.processing_seconds - u.first_result_seconds
            times.append(max(0.0, after_first) / (words - 1))
    return times
# --8<-- [end:token_latencies]


def word_errors(utterances: Sequence[UtteranceRecord]) -> WordErrors | None:
    """Corpus WER over utterances with a final: edits summed over all of
    them, then divided by all reference words, never a mean of
    per-utterance rates (which lets short utterances dominate)."""
    finished = [u for u in utterances if u.outcome == "ok"]
    if not finished:
        return None
    output = jiwer.process_words(
        [u.reference for u in finished], [u.hypothesis for u in finished],
        reference_transform=WORDS, hypothesis_transform=WORDS)
    return WordErrors(
        substitutions=output.substitutions,
        deletions=output.deletions,
        insertions=output.insertions,
        reference_words=(output.hits + output.substitutions
                         + output.deletions),
    )


# --8<-- [start:goodput]
def is_good(u: UtteranceRecord, targets: TierTargets) -> bool:
    """Good only if the utterance ended well and met every target."""
    return (u.outcome == "ok"
            and u.first_result_seconds is not None
            and u.first_result_seconds <= targets.first_result_seconds
            and u.final_latency_seconds is not None
            and u.final_latency_seconds <= targets.final_latency_seconds)


def goodput(utterances: Sequence[UtteranceRecord],
            targets: TierTargets) -> float | None:
    """The share of utterances that met every SLO at once (DistServe):
    fast first results do not make up for late or missing finals."""
    if not utterances:
        return None
    good = sum(is_good(u, targets) for u in utterances)
    return good / len(utterances)
# --8<-- [end:goodput]


def dropped(stream: StreamRecord) -> bool:
    """Closed with anything but a normal close or going away."""
    return stream.close_code not in ORDERLY_CLOSES


def drop_rate(streams: Sequence[StreamRecord]) -> float | None:
    if not streams:
        return None
    return sum(dropped(s) for s in streams) / len(streams)


def reconnection_rate(streams: Sequence[StreamRecord]) -> float | None:
    """The share of dropped streams after which the client came back."""
    drops = [s for s in streams if dropped(s)]
    if not drops:
        return None
    return sum(s.reconnected for s in drops) / len(drops)


def measure_slis(records: Iterable[Record], targets: TierTargets) -> Slis:
    """Every SLI of a run; goodput is judged against `targets`."""
    everything = list(records)
    utterances = [r for r in everything if isinstance(r, UtteranceRecord)]
    streams = [r for r in everything if isinstance(r, StreamRecord)]
    factors = real_time_factors(utterances)
    rtf = percentiles(factors)
    return Slis(
        utterances=len(utterances),
        streams=len(streams),
        first_result=percentiles(
            [u.first_result_seconds for u in utterances]),
        final_latency=percentiles(
            [u.final_latency_seconds for u in utterances]),
        rtf_p95=rtf.p95 if rtf else None,
        rtf_mean=sum(factors) / len(factors) if factors else None,
        word_errors=word_errors(utterances),
        goodput=goodput(utterances, targets),
        drop_rate=drop_rate(streams),
        reconnection=reconnection_rate(streams),
        inter_result=percentiles(inter_result_gaps(utterances)),
        time_per_word=percentiles(times_per_word(utterances)),
        # from the first word spoken to its utterance's final
        end_to_end=percentiles(
            [u.processing_seconds for u in utterances]),
    )


def bucket_bound(seconds: float, field: str) -> str:
    """`seconds` as the `le` label of a chapter 4 histogram bucket."""
    if seconds not in LATENCY_BUCKETS:
        bounds = ", ".join(str(b) for b in LATENCY_BUCKETS)
        raise InvalidField(field, (
            f"{seconds} s is not a histogram bucket bound ({bounds}); a"
            " ratio of requests within a target needs a bucket there"))
    return str(seconds)


def promql_slis(targets: TierTargets, window: str = "5m") -> dict[str, str]:
    """The SLIs Prometheus can compute from chapter 4's metrics, shaped
    as in `specs/streaming.yaml`: no traffic gives no sample, not NaN.

    Histograms hold each latency alone, so goodput (every target met
    by the same utterance) and WER need the per-utterance records; and
    an utterance with no result is never observed, so these quantiles
    can be lower than `percentiles` over the same run.
    """
    queries = {}
    for name, metric, target, field in (
        ("first_result", "speech_first_result_seconds",
         targets.first_result_seconds, "first_result_seconds"),
        ("final_latency", "speech_final_latency_seconds",
         targets.final_latency_seconds, "final_latency_seconds"),
    ):
        buckets = f"sum by (le) (rate({metric}_bucket[{window}]))"
        for q in QUANTILES:
            queries[f"{name}_p{q}"] = (
                f"histogram_quantile({q / 100}, {buckets})")
        le = bucket_bound(target, field)
        queries[f"{name}_within_target_ratio"] = (
            f'sum(rate({metric}_bucket{{le="{le}"}}[{window}]))\n'
            f"/ (sum(rate({metric}_count[{window}])) > 0)")
    # A counter never incremented has no series: no errors is 0.
    queries["connection_drop_ratio"] = (
        f"(sum(rate(speech_streams_errors_total[{window}])) or vector(0))\n"
        f"/ (sum(rate(speech_streams_total[{window}])) > 0)")
    return queries
