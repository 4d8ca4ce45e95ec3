"""A playout (jitter) buffer: the gaps it hides, the latency it costs.

Chapter 11, "Jitter buffers in streaming pipelines". Chunks of a stream
(audio of a voice agent's reply, or results) are sent every 20 ms but
reach the client late and bunched: a base network delay, heavy-tailed
jitter, and stalls after which every held chunk arrives at once. The
buffer releases chunk i at a steady cadence, a playout delay after the
first chunk arrived; a chunk that arrives after its slot is discarded
and the slot is a gap (silence, or a frozen caption). The playout
clock never waits, so the buffer adds a bounded, known latency, and
everything it adds is spent before the first result is heard: it comes
out of the 300 ms budget. Over a seeded trace in virtual time the
command measures, for fixed delays and for an adaptive delay (a
simplified NetEq), the latency added, the chunks late, the gaps left,
and which delay hides the most within the budget.
"""

from __future__ import annotations

import bisect
import math
import textwrap
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from ch11_slo.invalid import InvalidField
from ch11_slo.targets import tier_targets

DEFAULT_CHUNK_MS = 20
MAX_CHUNK_MS = 1_000
TRACE_SECONDS = 300
FIXED_DELAYS_MS = (0, 20, 40, 60, 80, 100, 150, 200, 250, 300)
# The adaptive delay: a high percentile of the last 10 s of delays.
ADAPTIVE_WINDOW_MS = 10_000
ADAPTIVE_QUANTILE = 0.99

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class Link:
    """The network between the sender and the buffer: a mobile link on
    a bad day. Jitter is Lomax (Pareto II): small mostly, rarely huge."""

    base_ms: float = 30.0
    jitter_scale_ms: float = 8.0
    jitter_shape: float = 2.5  # the lower, the heavier the tail
    stalls_per_minute: float = 6.0
    stall_min_ms: float = 60.0
    stall_max_ms: float = 300.0


LINK = Link()


@dataclass(frozen=True)
class Trace:
    """When each chunk was sent and when it reached the buffer, in ms of
    virtual time. Arrivals are in order, as over a WebSocket (TCP)."""

    chunk_ms: float
    sent_ms: FloatArray
    arrival_ms: FloatArray
    stalls: int = 0

    @property
    def network_ms(self) -> FloatArray:
        delay: FloatArray = self.arrival_ms - self.sent_ms
        return delay


def arrival_trace(seed: int, chunk_ms: float = DEFAULT_CHUNK_MS,
                  seconds: float = TRACE_SECONDS,
                  link: Link = LINK) -> Trace:
    """Chunks sent every `chunk_ms`; each is delayed by the link's base
    and a jitter draw; a stall holds every chunk that would arrive
    within it until it ends, and they arrive bunched. A chunk held up
    holds up those behind it (in-order delivery)."""
    rng = np.random.default_rng(seed)
    chunks = int(seconds * 1000 // chunk_ms)
    sent: FloatArray = np.arange(chunks, dtype=np.float64) * chunk_ms
    arrival = sent + link.base_ms + link.jitter_scale_ms * rng.pareto(
        link.jitter_shape, len(sent))
    stalls = int(rng.poisson(link.stalls_per_minute * seconds / 60))
    starts = rng.uniform(0, seconds * 1000, stalls)
    ends = starts + rng.uniform(link.stall_min_ms, link.stall_max_ms,
                                stalls)
    for start, end in zip(starts, ends, strict=True):
        arrival[(arrival >= start) & (arrival < end)] = end
    return Trace(float(chunk_ms), sent, np.maximum.accumulate(arrival),
                 stalls)


class PlayoutDelay(Protocol):
    """How long after its nominal time the buffer plays a chunk."""

    def next_ms(self) -> float:
        """The delay of the next slot."""
        ...

    def observe(self, relative_ms: float) -> None:
        """A chunk arrived `relative_ms` later than the first chunk's
        arrival and the send cadence predict."""
        ...


@dataclass
class FixedDelay:
    """The same delay for every slot, whatever arrives."""

    delay_ms: float

    def next_ms(self) -> float:
        return self.delay_ms

    def observe(self, relative_ms: float) -> None:
        """A fixed buffer learns nothing from arrivals."""


class AdaptiveDelay:
    """The delay tracks a high percentile of recent arrival delays.

    A simplified NetEq (WebRTC's audio jitter buffer): NetEq estimates
    its target from a histogram of inter-arrival delays with a
    forgetting factor, and reaches it by time-stretching audio
    (accelerate, preemptive expand). Here the target is the 99th
    percentile of the relative delays of the last 10 s of chunks to
    arrive, and the delay moves toward it by at most half a chunk per
    chunk, standing for audio played between 0.67x and 2x speed; it
    never inserts silence to grow.
    """

    def __init__(self, chunk_ms: float,
                 window_ms: float = ADAPTIVE_WINDOW_MS,
                 quantile: float = ADAPTIVE_QUANTILE) -> None:
        self._recent: deque[float] = deque(
            maxlen=max(1, round(window_ms / chunk_ms)))
        self._sorted: list[float] = []
        self._quantile = quantile
        self._step_ms = chunk_ms / 2
        self._delay_ms = 0.0

    def observe(self, relative_ms: float) -> None:
        if len(self._recent) == self._recent.maxlen:
            oldest = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
        self._recent.append(relative_ms)
        bisect.insort(self._sorted, relative_ms)

    def target_ms(self) -> float:
        """The quantile of the window (nearest rank), never below 0."""
        if not self._sorted:
            return 0.0
        rank = math.ceil(self._quantile * len(self._sorted)) - 1
        return max(0.0, self._sorted[rank])

    def next_ms(self) -> float:
        change = self.target_ms() - self._delay_ms
        self._delay_ms += max(-self._step_ms, min(self._step_ms, change))
        return self._delay_ms


@dataclass(frozen=True)
class Playout:
    """When each chunk's slot plays, and whether the chunk missed it."""

    play_ms: FloatArray
    late: BoolArray


# --8<-- [start:jitter_buffer]
def play_out(arrival_ms: FloatArray, chunk_ms: float,
             delay: PlayoutDelay) -> Playout:
    """Slot i plays at the first arrival + i chunks + the delay. The
    clock never waits: a chunk that arrives after its slot is late,
    discarded, and its slot is a gap."""
    first = float(arrival_ms[0])
    count = len(arrival_ms)
    play_ms = np.empty(count)
    arrived = 0  # chunks in the buffer so far; they arrive in order
    for slot in range(count):
        play_ms[slot] = first + slot * chunk_ms + delay.next_ms()
        while arrived < count and arrival_ms[arrived] <= play_ms[slot]:
            delay.observe(float(arrival_ms[arrived]) - first
                          - arrived * chunk_ms)
            arrived += 1
    return Playout(play_ms, arrival_ms > play_ms)
# --8<-- [end:jitter_buffer]


def gap_lengths(late: BoolArray) -> NDArray[np.int64]:
    """Lengths, in chunks, of each run of consecutive late slots."""
    edges = np.flatnonzero(np.diff(np.concatenate(
        ([0], late.astype(np.int64), [0]))))
    lengths: NDArray[np.int64] = edges[1::2] - edges[0::2]
    return lengths


@dataclass(frozen=True)
class BufferFigures:
    """One buffer over one trace. Added: how long a chunk waits in the
    buffer (a late chunk is discarded, so 0). Play: from sending to
    playout, over the chunks played. Late chunks are underruns; gaps
    are runs of them, each heard as one dropout."""

    label: str
    added_mean_ms: float
    added_p95_ms: float
    play_p95_ms: float
    chunks: int
    late: int
    gaps: int
    longest_gap_ms: float

    @property
    def late_share(self) -> float:
        return self.late / self.chunks


def buffer_figures(label: str, trace: Trace,
                   playout: Playout) -> BufferFigures:
    played = ~playout.late
    added = np.where(played, playout.play_ms - trace.arrival_ms, 0.0)
    play = (playout.play_ms - trace.sent_ms)[played]
    gaps = gap_lengths(playout.late)
    return BufferFigures(
        label=label,
        added_mean_ms=float(added.mean()),
        added_p95_ms=float(np.percentile(added, 95)),
        play_p95_ms=float(np.percentile(play, 95)),
        chunks=len(added),
        late=int(playout.late.sum()),
        gaps=len(gaps),
        longest_gap_ms=float(gaps.max(initial=0) * trace.chunk_ms),
    )


def fixed_figures(trace: Trace, delay_ms: float) -> BufferFigures:
    playout = play_out(trace.arrival_ms, trace.chunk_ms,
                       FixedDelay(delay_ms))
    return buffer_figures(f"{delay_ms:g}", trace, playout)


def sweep(trace: Trace, delays_ms: Sequence[float] = FIXED_DELAYS_MS,
          ) -> list[BufferFigures]:
    """Every fixed delay, then the adaptive one, over the same trace."""
    rows = [fixed_figures(trace, delay) for delay in delays_ms]
    adaptive = play_out(trace.arrival_ms, trace.chunk_ms,
                        AdaptiveDelay(trace.chunk_ms))
    return [*rows, buffer_figures("adaptive", trace, adaptive)]


def best_within(rows: Sequence[BufferFigures],
                budget_ms: float) -> BufferFigures | None:
    """Of the buffers whose p95 from sending to playout fits the
    budget, the one with the fewest late chunks, then the fewest gaps,
    then the least added latency."""
    fits = [r for r in rows if r.play_p95_ms <= budget_ms]
    return min(fits, default=None, key=lambda r: (
        r.late, r.gaps, r.added_mean_ms))


def buffer_name(row: BufferFigures) -> str:
    if row.label == "adaptive":
        return "the adaptive delay"
    return f"a {row.label} ms playout delay"


def verdict(rows: Sequence[BufferFigures], budget_ms: float) -> str:
    best = best_within(rows, budget_ms)
    if best is None:
        fastest = min(r.play_p95_ms for r in rows)
        return (f"No buffer fits the {budget_ms:g} ms budget: even the"
                f" fastest takes {fastest:.0f} ms from sending to"
                f" playout at p95.")
    return (f"Within the {budget_ms:g} ms budget, {buffer_name(best)}"
            f" hides the most: {best.late_share:.2%} of chunks late in"
            f" {best.gaps} gaps, {best.play_p95_ms:.0f} ms from sending"
            f" to playout at p95, {budget_ms - best.play_p95_ms:.0f} ms"
            f" left for the service.")


def describe(trace: Trace, seed: int, link: Link = LINK) -> str:
    network = trace.network_ms
    seconds = len(trace.sent_ms) * trace.chunk_ms / 1000
    return (f"{seconds:g} s of {trace.chunk_ms:g} ms chunks, seed {seed}:"
            f" network delay p50 {np.percentile(network, 50):.0f} ms,"
            f" p99 {np.percentile(network, 99):.0f} ms, max"
            f" {network.max():.0f} ms, {trace.stalls} stalls of"
            f" {link.stall_min_ms:g}-{link.stall_max_ms:g} ms")


HEADER = ("delay ms", "added mean", "added p95", "play p95", "left",
          "late", "late %", "gaps", "max gap")


def cells(row: BufferFigures, budget_ms: float) -> tuple[str, ...]:
    return (row.label, f"{row.added_mean_ms:.1f}", f"{row.added_p95_ms:.0f}",
            f"{row.play_p95_ms:.0f}", f"{budget_ms - row.play_p95_ms:.0f}",
            str(row.late), f"{row.late_share:.2%}", str(row.gaps),
            f"{row.longest_gap_ms:g}")


TABLE_NOTES = """\
added: ms a chunk waits in the buffer (a late one is discarded: 0).
play: ms from sending to playout. left: budget minus play p95, for the
service. late: chunks that missed their slot; gaps: runs of them, each
one dropout; max gap: the longest, ms.
"""


def format_table(rows: Sequence[BufferFigures], budget_ms: float,
                 markdown: bool = False) -> str:
    """Aligned text within 79 columns, or Markdown for the manuscript."""
    table = [HEADER] + [cells(row, budget_ms) for row in rows]
    if markdown:
        lines = [f"| {' | '.join(row)} |" for row in table]
        lines.insert(1, "|" + "---|" * len(HEADER))
        return "\n".join(lines) + "\n"
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width
                               in zip(row, widths, strict=True)).rstrip()
                     for row in table) + "\n" + TABLE_NOTES


def check_setup(seed: int, chunk_ms: int) -> None:
    """InvalidField naming the setting that cannot make a trace."""
    if seed < 0:
        raise InvalidField("seed", f"{seed} is negative (use 0 or more)")
    if not 1 <= chunk_ms <= MAX_CHUNK_MS:
        raise InvalidField("chunk_ms", f"{chunk_ms} ms is outside 1 to"
                                       f" {MAX_CHUNK_MS} ms")


def jitter_report(seed: int = 0, chunk_ms: int = DEFAULT_CHUNK_MS,
                  tier: str = "voice-ai", markdown: bool = False) -> str:
    """What `python -m ch11_slo jitter` prints: the trace, the table,
    and the verdict against the tier's first-result target."""
    check_setup(seed, chunk_ms)
    budget_ms = round(tier_targets(tier).first_result_seconds * 1000, 6)
    trace = arrival_trace(seed, chunk_ms)
    rows = sweep(trace)
    return "\n".join([
        textwrap.fill(describe(trace, seed), 72), "",
        format_table(rows, budget_ms, markdown),
        textwrap.fill(verdict(rows, budget_ms), 72),
    ]) + "\n"

