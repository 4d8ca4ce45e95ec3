"""Chunk-to-result latency and audio lost, from one stream's trace.

Chapter 5, "WebTransport: QUIC datagrams, head-of-line blocking". A
result says the recogniser has heard the stream up to some time; a
chunk's latency runs from its send to the first result whose end
reaches the chunk's end, so that a chunk held behind a lost packet
counts for as long as it was held, however many chunks its result then
covers at once. Only timed chunks count (inside an utterance, after its
first word: before that no result has words); one that no result ever
reached counts at the time the stream ended, and as unanswered. Over a
stream: the p50, p99 (nearest rank) and max. Audio lost is the share of
the audio sent that the server says it never received: zero on TCP by
construction, whatever a lost packet costs in time; on datagrams,
whatever was dropped and not sent again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ch05_protocols.lossy_speech import CHUNK_S
from ch05_protocols.lossy_stream import Trace

SLACK_S = 1e-6  # a result's end is rounded, to the millisecond or so


def chunk_latencies_ms(trace: Trace, timed: Sequence[bool],
                       chunk_s: float = CHUNK_S) -> tuple[list[float], int]:
    """Each timed chunk's latency, and how many no result reached."""
    sent = trace.sent_at
    waiting = deque(i for i in range(len(sent)) if timed[i])
    latencies = []
    for end_s, at in trace.results:
        while waiting and (waiting[0] + 1) * chunk_s <= end_s + SLACK_S:
            latencies.append(1000 * (at - sent[waiting.popleft()]))
    ended = trace.ended_at if trace.ended_at is not None else max(
        [at for _, at in trace.results] + sent, default=0.0)
    latencies += [1000 * (ended - sent[i]) for i in waiting]
    return latencies, len(waiting)


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value with `share` of them at or
    below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class Cell:
    """One transport at one loss rate."""

    transport: str
    loss_pct: float  # the rule's rate
    chunks: int  # timed chunks: the latencies' count
    unanswered: int  # of them, reached by no result
    results: int  # results with words received
    p50_ms: float | None  # None: nothing timed
    p99_ms: float | None
    max_ms: float | None
    sent_s: float
    received_s: float | None  # None: the server did not say
    audio_lost_pct: float | None
    observed_loss_pct: float | None = None  # packets the rule dropped


def summarize(transport: str, loss_pct: float, trace: Trace,
              timed: Sequence[bool],
              observed_loss_pct: float | None = None,
              chunk_s: float = CHUNK_S) -> Cell:
    values, unanswered = chunk_latencies_ms(trace, timed, chunk_s)
    sent_s = round(len(trace.sent_at) * chunk_s, 3)
    lost = None
    if trace.received_s is not None and sent_s:
        lost = round(max(0.0, 100 * (1 - trace.received_s / sent_s)), 3)

    def at(share: float) -> float | None:
        return round(percentile(values, share), 2) if values else None

    return Cell(transport, loss_pct, len(values), unanswered,
                len(trace.results), at(0.5), at(0.99), at(1.0), sent_s,
                trace.received_s, lost, observed_loss_pct)
