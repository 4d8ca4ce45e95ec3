"""The mock's matcher batched across streams: one step for all of them.

Chapter 6, "Handling multiple concurrent streams". Chapter 4's matcher
advances one utterance at a time, a dozen small numpy calls per 10 ms
frame, so with hundreds of streams the interpreter's overhead, not the
arithmetic, is what the worker spends. `MatcherBank` holds the matching
state of every live utterance in struct-of-arrays form and advances a
whole batch together: one FFT for all the batch's frames, then, frame
step by frame step, one set of array operations for every stream that
has a step to take (the unlocked ones against the whole lexicon, the
locked ones in their beams), as a real model server batches the model's
own work across its sequences. It hears exactly what chapter 4's
`Matcher` hears: the same words, times and confidences.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from ch04_streaming.engine import DecodeRequest, UtteranceDecoder
from ch04_streaming.matcher_process import Job

# The scalar matcher's own constants and helpers, private ones included:
# the bank must compute exactly what it computes, not a copy of it.
from ch04_streaming.mock_matcher import (
    _EDGE_BINS,
    _POWER_SCALE,
    _SILENT,
    _WINDOW,
    BEAM_BEHIND,
    BEAM_WIDTH,
    DECISION_FRAMES,
    EDGE_SILENCE_FRAMES,
    FINAL_WORD_SHARE,
    FRAME,
    HOP,
    HOP_S,
    INTERIM_WORD_SHARE,
    LOCK_MARGIN,
    LOCK_MAX_FRAMES,
    LOCK_MIN_FRAMES,
    MATCH_THRESHOLD,
    N_BANDS,
    SAMPLE_RATE,
    SILENCE_DB,
    STEP_PENALTY,
    Bursts,
    Lexicon,
    RecognizedWord,
    _as_samples,
    _confidence,
    _frame_centre_s,
    fingerprints_of_powers,
)

Floats = npt.NDArray[np.float64]
Floats32 = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_NONE, _SILENCE, _SPEECH = -1, 0, 1  # what a stream does at a step
_BEAM_CELLS = np.arange(BEAM_WIDTH)
_ROWS_PER_BLOCK = 16  # unlocked rows stepped together (~1.5 MB of paths)
_FRAMES_PER_BLOCK = 256  # fingerprinted together (~1 MB of spectra)
_ZEROS = np.zeros(FRAME, dtype=np.float32)
_SILENCE_PROBE = np.zeros(N_BANDS + 2, dtype=np.float32)
_SILENCE_PROBE[[_SILENT, -1]] = 1.0


@dataclass
class _Frames:
    """The fingerprints of every frame of a batch, jobs one after another.

    The same arithmetic as `mock_matcher.fingerprints`, row by row (one
    FFT per row, whatever the number of rows), so each frame's probe is
    bit for bit the one chapter 4's matcher computes.
    """

    probes: Floats32  # (n_frames, N_BANDS + 2)
    levels: Floats  # dB
    bands: Ints  # the strongest band of each frame
    job: Ints  # which job each frame belongs to
    index: Ints  # the frame's number within its job
    first: Ints  # per job: its first frame
    count: Ints  # and its number of frames


def _band_powers(hops: Floats, rows: Ints) -> Floats:
    """`mock_matcher._band_powers` of the frames `hops[rows]`, a block of
    frames at a time, so each block's spectra stay in the cache."""
    powers = np.empty((len(rows), N_BANDS))
    low, high = _EDGE_BINS[0], _EDGE_BINS[-1]
    for a in range(0, len(rows), _FRAMES_PER_BLOCK):
        frames = hops[rows[a : a + _FRAMES_PER_BLOCK]]
        frames *= _WINDOW
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        bands = np.add.reduceat(power[:, low:high], _EDGE_BINS[:-1] - low,
                                axis=1)
        powers[a : a + _FRAMES_PER_BLOCK] = bands * _POWER_SCALE
    return powers


def _fingerprint_frames(powers: Floats, job: Ints, index: Ints,
                        first: Ints, count: Ints) -> _Frames:
    vectors, levels = fingerprints_of_powers(powers)
    probes = np.ones((len(vectors), N_BANDS + 2), dtype=np.float32)
    probes[:, :-1] = vectors
    strongest = vectors[:, :N_BANDS].argmax(axis=1).astype(np.int64)
    return _Frames(probes, levels, strongest, job, index, first, count)


class _Scratch:
    """Buffers for a step's temporaries, kept from step to step: numpy
    would allocate them afresh each time, and a fresh buffer of a
    megabyte costs its page faults again (measured: a step of 16 rows
    took 4 times as long)."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, np.dtype[Any]], npt.NDArray[Any]] = {}

    def get(self, name: str, like: npt.NDArray[Any],
            dtype: npt.DTypeLike | None = None) -> Any:
        """A buffer shaped as `like`, of its type unless `dtype` is given;
        its contents undefined."""
        kind = np.dtype(like.dtype if dtype is None else dtype)
        buffer = self._buffers.get((name, kind))
        if buffer is None or buffer.size < like.size:
            buffer = self._buffers[name, kind] = np.empty(like.size, kind)
        return buffer[: like.size].reshape(like.shape)


def _dtw_rows(cost: Floats, carried: npt.NDArray[Any],
              distance: npt.NDArray[Any], work: _Scratch) -> None:
    """`mock_matcher._dtw_step` on every row of (rows, cells + 2) arrays:
    one stream's paths a row. The costs take the same float64 operations
    in the same order as chapter 4's, so they are the same sums."""
    # --8<-- [start:batched_matching_step]
    # Each cell continues the cheapest path into it: from the cell one
    # template frame back (diagonal), from itself (a template frame
    # repeated) or from two back (one skipped); the last two pay extra.
    same, one_back, two_back = cost[:, 2:], cost[:, 1:-1], cost[:, :-2]
    wins = work.get("wins", same, np.bool_)
    repeat_wins = np.less_equal(same, two_back, out=wins)
    warped = np.minimum(same, two_back, out=work.get("warped", same))
    warped += STEP_PENALTY
    # The winner's frame sum comes along: whole numbers, so choosing by
    # arithmetic (a + wins * (b - a)) is exact, and cheaper than a mask.
    sums = carried[:, 2:]
    chosen = np.subtract(sums, carried[:, :-2], out=work.get("sum", sums))
    chosen *= repeat_wins
    chosen += carried[:, :-2]
    diagonal_wins = np.less_equal(one_back, warped, out=wins)
    diagonal = np.subtract(carried[:, 1:-1], chosen,
                           out=work.get("diagonal", sums))
    diagonal *= diagonal_wins
    chosen += diagonal
    np.minimum(warped, one_back, out=warped)
    warped += distance  # every row's frame against every cell
    same[...] = warped
    sums[...] = chosen
    # --8<-- [end:batched_matching_step]


@dataclass
class _Steps:
    """Each job's alignment steps, in order: (jobs, steps) tables.

    Silence joins the alignment only when speech follows it, so a job's
    frames become steps as chapter 4's `Matcher._take_frame` makes them:
    a speech frame is one speech step, preceded by the pause before it
    as silence steps, except the first speech of an utterance, which
    starts from the lexicon's lead-in row for its leading silence.
    """

    kind: npt.NDArray[np.int8]  # _NONE, _SILENCE or _SPEECH
    frame: Ints  # the batch frame of a speech step
    segment: Ints  # and its number in the utterance
    lead_in: Ints  # per job: the lead-in row of a start, -1 for none


class MatcherBank:
    """The matching state of many utterances, advanced a batch at a time.

    Utterances are keyed by an int; state is created at an utterance's
    first job, forgotten after its final one, and evicted after `idle_s`
    without a job (its stream is gone). Per utterance the bank keeps what
    chapter 4's `Matcher` keeps (its paths: the whole lexicon's until the
    beam locks, BEAM_WIDTH cells after) plus each frame's level and
    strongest band until placeholders need them: bounded by the longest
    utterance the VAD lets through.
    """

    def __init__(self, lexicon: Lexicon, idle_s: float = 60.0) -> None:
        self.lexicon = lexicon
        self.idle_s = idle_s
        self._n_cells = lexicon.n_frames
        self._frame_numbers32 = lexicon.frame_numbers.astype(np.float32)
        self._words_table = _TemplateWords(lexicon)
        self._windows = _Windows.of(lexicon.columns)
        self._work = _Scratch()
        self._slots: OrderedDict[int, int] = OrderedDict()  # key -> slot
        self._free: list[int] = []
        # Per utterance (a slot): scalars of `Matcher` and `Alignment`,
        # one array each; the beam's paths once locked.
        self._n_samples: Ints = np.zeros(0, dtype=np.int64)
        self._n_frames: Ints = np.zeros(0, dtype=np.int64)
        self._first_speech: Ints = np.zeros(0, dtype=np.int64)
        self._last_speech: Ints = np.zeros(0, dtype=np.int64)
        self._pending: Ints = np.zeros(0, dtype=np.int64)  # silent frames
        self._n_speech: Ints = np.zeros(0, dtype=np.int64)
        self._frame_sum: Ints = np.zeros(0, dtype=np.int64)  # speech's
        self._locked: Bools = np.zeros(0, dtype=np.bool_)
        self._lo: Ints = np.zeros(0, dtype=np.int64)  # the window's start
        self._width: Ints = np.zeros(0, dtype=np.int64)  # and width
        self._row: Ints = np.zeros(0, dtype=np.int64)  # in the pool
        self._used: Floats = np.zeros(0)  # last job's `now`
        self._beam_cost: Floats = np.zeros((0, BEAM_WIDTH + 2))
        self._beam_carried: Floats = np.zeros((0, BEAM_WIDTH + 2))
        self._leftover: list[Floats32] = []  # samples short of a frame
        self._bursts: list[Bursts] = []
        self._unheard: list[list[tuple[Floats, Ints]]] = []
        self._grow_slots(64)
        # Unlocked paths span the lexicon: rows of a pool of their own,
        # rearranged at each call so that the rows with a step to take
        # are one block (`_arrange_pool`). Frame sums stay under 2**24
        # while unlocked (at most LOCK_MAX_FRAMES speech frames, each
        # adding a frame number under 2**13), so float32 holds them
        # exactly, at half the memory traffic of float64.
        self._full_cost = np.zeros((0, self._n_cells + 2))
        self._full_carried = np.zeros((0, self._n_cells + 2), np.float32)
        self._owner = np.zeros(0, dtype=np.int64)  # slot, -1 if none
        self._pool_job = np.zeros(0, dtype=np.int64)  # job in this call
        self._pool_steps = np.zeros(0, dtype=np.int64)  # its step count

    # -- per-slot state, struct of arrays --------------------------------

    def _grow_slots(self, capacity: int) -> None:
        """Room for `capacity` utterances (a slot each), kept as before."""
        old = len(self._used)

        def grown(array: npt.NDArray[Any], fill: float) -> Any:
            bigger = np.full((capacity, *array.shape[1:]), fill,
                             dtype=array.dtype)
            bigger[:old] = array
            return bigger

        self._n_samples = grown(self._n_samples, 0)
        self._n_frames = grown(self._n_frames, 0)
        self._first_speech = grown(self._first_speech, -1)
        self._last_speech = grown(self._last_speech, -1)
        self._pending = grown(self._pending, 0)
        self._n_speech = grown(self._n_speech, 0)
        self._frame_sum = grown(self._frame_sum, 0)
        self._locked = grown(self._locked, False)
        self._lo = grown(self._lo, 0)
        self._width = grown(self._width, 0)
        self._row = grown(self._row, -1)
        self._used = grown(self._used, 0.0)
        self._beam_cost = grown(self._beam_cost, np.inf)
        self._beam_carried = grown(self._beam_carried, 0.0)
        added = range(old, capacity)
        self._leftover += [np.zeros(0, np.float32) for _ in added]
        self._bursts += [Bursts() for _ in added]
        self._unheard += [[] for _ in added]
        self._free.extend(reversed(added))

    def _new_slot(self) -> int:
        if not self._free:
            self._grow_slots(2 * len(self._used))
        slot = self._free.pop()
        for ints in (self._n_samples, self._n_frames, self._pending,
                     self._n_speech, self._frame_sum, self._lo,
                     self._width):
            ints[slot] = 0
        self._first_speech[slot] = self._last_speech[slot] = -1
        self._row[slot] = -1
        self._locked[slot] = False
        self._leftover[slot] = np.zeros(0, np.float32)
        self._bursts[slot] = Bursts()
        self._unheard[slot] = []
        return slot

    def _forget(self, slot: int) -> None:
        row = int(self._row[slot])
        if row >= 0:
            self._owner[row] = -1
        self._row[slot] = -1
        self._unheard[slot] = []
        self._free.append(slot)

    @property
    def keys(self) -> list[int]:
        """The live utterances, least recently used first."""
        return list(self._slots)

    def window(self, key: int) -> tuple[bool, int, int]:
        """Whether the utterance's beam is locked, and the lexicon frames
        its paths span: first, and how many (for checks and metrics)."""
        slot = self._slots[key]
        return (bool(self._locked[slot]), int(self._lo[slot]),
                int(self._width[slot]))

    # -- the batch --------------------------------------------------------

    def advance(self, jobs: Sequence[Job], now: float
                ) -> list[list[RecognizedWord]]:
        """Feed each job's audio to its utterance; the words heard, one
        list per job. A key may appear once per call: its jobs are steps
        of one utterance, and within a call they would have no order."""
        chunks = self._checked(jobs)
        if not jobs:  # a call for eviction alone
            self._retire(jobs, np.zeros(0, dtype=np.int64), now)
            return []
        slots = np.array([self._slot_of(key) for key, _, _ in jobs],
                         dtype=np.int64)
        finals = np.array([final for _, _, final in jobs], dtype=np.bool_)
        frames = self._frame(slots, chunks)
        steps = self._steps_of(slots, frames)
        self._run(slots, frames, steps)
        heard = self._words(slots, finals)
        self._retire(jobs, slots, now)
        return heard

    def _checked(self, jobs: Sequence[Job]) -> list[Floats32]:
        """Every job's audio, checked before any state changes, so a bad
        job fails the call and leaves every utterance as it was."""
        seen: set[int] = set()
        for key, _, _ in jobs:
            if key in seen:
                raise ValueError(f"utterance {key} has two jobs in a batch")
            seen.add(key)
        return [_as_samples(audio) for _, audio, _ in jobs]

    def _slot_of(self, key: int) -> int:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = self._new_slot()
        return slot

    def _retire(self, jobs: Sequence[Job], slots: Ints, now: float
                ) -> None:
        for (key, _, final), slot in zip(jobs, slots.tolist(),
                                         strict=True):
            if final:
                del self._slots[key]
                self._forget(slot)
            else:
                self._slots.move_to_end(key)  # most recent last
                self._used[slot] = now
        while self._slots:
            key, slot = next(iter(self._slots.items()))
            if now - self._used[slot] < self.idle_s:
                break
            del self._slots[key]
            self._forget(slot)

    def _frame(self, slots: Ints, chunks: list[Floats32]) -> _Frames:
        """Cut each job's audio (after its utterance's leftover) into
        frames, and fingerprint all of them at once."""
        slot_list = slots.tolist()
        lefts = [self._leftover[slot] for slot in slot_list]
        sizes = np.array([c.size for c in chunks], dtype=np.int64)
        self._n_samples[slots] += sizes
        sizes += [left.size for left in lefts]
        # Each job's audio starts on a hop, so one strided view of the
        # batch's samples holds every job's frames.
        padded = sizes + (-sizes % HOP)
        pieces: list[Floats32] = []
        for left, chunk, pad in zip(lefts, chunks, (padded - sizes).tolist(),
                                    strict=True):
            pieces += (left, chunk, _ZEROS[:pad])
        pieces.append(_ZEROS)
        audio = np.concatenate(pieces)
        starts = np.cumsum(padded) - padded
        count = np.where(sizes < FRAME, 0, 1 + (sizes - FRAME) // HOP)
        kept_from = (starts + count * HOP).tolist()
        for slot, a, b in zip(slot_list, kept_from, (starts + sizes).tolist(),
                              strict=True):
            self._leftover[slot] = audio[a:b].copy()  # not the batch's
        hops = sliding_window_view(audio.astype(np.float64), FRAME)[::HOP]
        first = np.cumsum(count) - count
        job = np.repeat(np.arange(len(slots)), count)
        index = np.arange(len(job)) - first[job]
        powers = _band_powers(hops, starts[job] // HOP + index)
        return _fingerprint_frames(powers, job, index, first, count)

    def _steps_of(self, slots: Ints, frames: _Frames) -> _Steps:
        """Turn each job's frames into its alignment steps, and account
        for them in the utterance's frame counts."""
        n_jobs = len(slots)
        n_frames = frames.count
        for slot, a, n in zip(slots.tolist(), frames.first.tolist(),
                              n_frames.tolist(), strict=True):
            if n:  # kept for placeholders
                self._unheard[slot].append((frames.levels[a : a + n].copy(),
                                            frames.bands[a : a + n].copy()))
        speech = np.flatnonzero(frames.levels >= SILENCE_DB)
        job, index = frames.job[speech], frames.index[speech]
        first_in_job = np.ones(len(speech), dtype=np.bool_)
        first_in_job[1:] = job[1:] != job[:-1]
        previous = np.concatenate(([0], index[:-1]))
        pause = np.where(first_in_job, self._pending[slots][job] + index,
                         index - previous - 1)
        starts = first_in_job & (self._first_speech[slots][job] < 0)
        silence_steps = np.where(starts, 0, pause)
        n_steps = silence_steps + 1
        per_job = np.bincount(job, weights=n_steps, minlength=n_jobs
                              ).astype(np.int64)
        before_job = np.concatenate(([0], np.cumsum(per_job)[:-1]))
        position = np.cumsum(n_steps) - 1 - before_job[job]
        width = int(per_job.max(initial=0))
        kind = np.full((n_jobs, width), _NONE, dtype=np.int8)
        kind[np.arange(width) < per_job[:, None]] = _SILENCE
        kind[job, position] = _SPEECH
        frame = np.zeros((n_jobs, width), dtype=np.int64)
        frame[job, position] = speech
        segment = np.zeros((n_jobs, width), dtype=np.int64)
        segment[job, position] = self._n_frames[slots][job] + index
        lead_in = np.full(n_jobs, -1, dtype=np.int64)
        lead_in[job[starts]] = np.minimum(pause[starts],
                                          EDGE_SILENCE_FRAMES)
        self._account_frames(slots, n_frames, job, index, starts)
        return _Steps(kind, frame, segment, lead_in)

    def _account_frames(self, slots: Ints, n_frames: Ints, job: Ints,
                        index: Ints, starts: Bools) -> None:
        """Frame counts, first and last speech, pending silence."""
        first = self._n_frames[slots]
        started = slots[job[starts]]
        self._first_speech[started] = first[job[starts]] + index[starts]
        last_in_job = np.ones(len(job), dtype=np.bool_)
        last_in_job[:-1] = job[1:] != job[:-1]
        has_speech = np.zeros(len(slots), dtype=np.bool_)
        has_speech[job] = True
        last = np.zeros(len(slots), dtype=np.int64)
        last[job[last_in_job]] = index[last_in_job]
        self._last_speech[slots[has_speech]] = (first + last)[has_speech]
        self._pending[slots] = np.where(
            has_speech, n_frames - 1 - last, self._pending[slots] + n_frames)
        self._n_frames[slots] += n_frames

    # -- stepping ---------------------------------------------------------

    def _arrange_pool(self, slots: Ints, steps: _Steps) -> None:
        """Rebuild the pool of unlocked paths: this call's rows first, by
        their number of steps, most first, so at step t the rows with a
        step to take are the first ones: slices, not gathered copies."""
        n_steps = (steps.kind != _NONE).sum(axis=1)
        rows = self._row[slots]
        starting = steps.lead_in >= 0
        taking = np.flatnonzero((rows >= 0) | starting)
        taking = taking[np.argsort(-n_steps[taking], kind="stable")]
        n_old = len(self._owner)
        new_rows = n_old + np.arange(len(slots))  # for the starting ones
        source = np.where(starting, new_rows, rows)[taking]
        rest = np.setdiff1d(np.flatnonzero(self._owner >= 0), source)
        order = np.concatenate((source, rest))
        old = order < n_old
        cost = np.empty((len(order), self._n_cells + 2))
        carried = np.zeros((len(order), self._n_cells + 2), np.float32)
        cost[old] = self._full_cost[order[old]]
        carried[old] = self._full_carried[order[old]]
        cost[~old] = self.lexicon.lead_ins[
            steps.lead_in[order[~old] - n_old]]
        owner = np.concatenate((self._owner, slots))[order]
        self._full_cost, self._full_carried, self._owner = (
            cost, carried, owner)
        self._row[owner] = np.arange(len(order))
        self._width[slots[starting]] = self._n_cells
        self._pool_job = np.full(len(order), -1, dtype=np.int64)
        self._pool_job[: len(taking)] = taking
        self._pool_steps = np.zeros(len(order), dtype=np.int64)
        self._pool_steps[: len(taking)] = n_steps[taking]

    def _run(self, slots: Ints, frames: _Frames, steps: _Steps) -> None:
        """Step t of every job at once, for t = 0, 1, ...: each step is
        one set of array operations for the unlocked streams that have
        one (a block of pool rows at a time) and one for the locked."""
        self._arrange_pool(slots, steps)
        for t in range(steps.kind.shape[1]):
            kind = steps.kind[:, t]
            active = np.flatnonzero(kind != _NONE)
            # Locked before the step: who locks in it steps but once.
            beamed = active[self._locked[slots[active]]]
            self._step_pool(t, steps, frames)
            if len(beamed):
                self._step_beams(slots[beamed], kind[beamed],
                                 steps.frame[beamed, t],
                                 steps.segment[beamed, t], frames)

    def _step_pool(self, t: int, steps: _Steps, frames: _Frames) -> None:
        """Step t for the unlocked rows that have one, a block at a time:
        a block's arrays stay in the cache through the step's passes."""
        n_rows = int(np.count_nonzero(self._pool_steps > t))
        if not n_rows:  # most steps, once the beams have locked
            return
        alive = self._owner[:n_rows] >= 0
        # Rows that locked earlier in this call are skipped, not stepped.
        edges = np.flatnonzero(np.diff(alive, prepend=False, append=False))
        for first, end in zip(edges[::2].tolist(), edges[1::2].tolist(),
                              strict=True):
            for a in range(first, end, _ROWS_PER_BLOCK):
                b = min(a + _ROWS_PER_BLOCK, end)
                self._step_full(a, b, t, steps, frames)

    def _count_speech(self, slots: Ints, segment_frame: Ints) -> None:
        self._n_speech[slots] += 1
        self._frame_sum[slots] += segment_frame

    def _step_full(self, a: int, b: int, t: int, steps: _Steps,
                   frames: _Frames) -> None:
        """Step t for pool rows a..b: whole-lexicon paths, then the lock
        test for rows with enough speech."""
        job = self._pool_job[a:b]
        speech = steps.kind[job, t] == _SPEECH
        # A silent frame's probe gives exactly the lexicon's silence
        # distances (every product and partial sum is a small whole
        # number or a barrier, exact in float32), so one product serves
        # speech and silence rows.
        probes = np.where(speech[:, None],
                          frames.probes[steps.frame[job, t]], _SILENCE_PROBE)
        distance = (probes[:, None, :] @ self.lexicon.columns)[:, 0]
        cost, carried = self._full_cost[a:b], self._full_carried[a:b]
        _dtw_rows(cost, carried, distance, self._work)
        np.add(carried[:, 2:], self._frame_numbers32, out=carried[:, 2:],
               where=speech[:, None])
        if not speech.any():
            return
        spoken = self._owner[a:b][speech]
        self._count_speech(spoken, steps.segment[job[speech], t])
        deciding = np.flatnonzero(speech)[
            self._n_speech[spoken] >= LOCK_MIN_FRAMES]
        if len(deciding):
            self._try_lock(self._owner[a:b][deciding], cost[deciding])

    def _try_lock(self, slots: Ints, cost: Floats) -> None:
        """Chapter 4's lock test on each row: lock on a clear lead over
        every rival outside the beam, or after LOCK_MAX_FRAMES."""
        costs = cost[:, 2:]
        best = costs.argmin(axis=1)
        lo = np.maximum(0, best - BEAM_BEHIND)
        window = np.minimum(lo[:, None] + _BEAM_CELLS, self._n_cells - 1)
        outside = costs.copy()
        np.put_along_axis(outside, window, np.inf, axis=1)
        rival = outside.min(axis=1)
        leader = costs[np.arange(len(slots)), best]
        lead = (rival - leader) / self._n_speech[slots]
        lock = (lead >= LOCK_MARGIN) | (
            self._n_speech[slots] >= LOCK_MAX_FRAMES)
        if not lock.any():
            return
        slots, lo, rows = slots[lock], lo[lock], self._row[slots[lock]]
        self._owner[rows] = -1
        width = np.minimum(BEAM_WIDTH, self._n_cells - lo)
        inside = width[:, None] > _BEAM_CELLS
        cells = 2 + np.minimum(lo[:, None] + _BEAM_CELLS, self._n_cells - 1)
        beam_cost = np.full((len(slots), BEAM_WIDTH + 2), np.inf)
        beam_carried = np.zeros((len(slots), BEAM_WIDTH + 2))
        beam_cost[:, 2:] = np.where(
            inside, self._full_cost[rows[:, None], cells], np.inf)
        beam_carried[:, 2:] = np.where(
            inside, self._full_carried[rows[:, None], cells], 0.0)
        self._beam_cost[slots] = beam_cost
        self._beam_carried[slots] = beam_carried
        self._lo[slots], self._width[slots] = lo, width
        self._locked[slots] = True
        self._row[slots] = -1

    def _step_beams(self, slots: Ints, kind: npt.NDArray[np.int8],
                    frame: Ints, segment: Ints, frames: _Frames) -> None:
        """A step for locked utterances: their beams, gathered, stepped
        and put back (BEAM_WIDTH cells each, so copies are cheap)."""
        speech = kind == _SPEECH
        cost, carried = self._beam_cost[slots], self._beam_carried[slots]
        lo, width = self._lo[slots], self._width[slots]
        probes = np.where(speech[:, None], frames.probes[frame],
                          _SILENCE_PROBE)
        _advance_beams(self._windows, self._work, cost, carried, lo, width,
                       probes, speech)
        self._beam_cost[slots], self._beam_carried[slots] = cost, carried
        self._lo[slots], self._width[slots] = lo, width
        self._count_speech(slots[speech], segment[speech])

    # -- the words --------------------------------------------------------

    def _words(self, slots: Ints, finals: Bools
               ) -> list[list[RecognizedWord]]:
        """Chapter 4's `Matcher.words` for each job: the best path (for a
        final, as if the silence after the last word went on), then its
        template's words, or placeholders if no template fits."""
        speech = self._n_speech[slots]
        wanted = (speech > 0) & (finals | (speech >= DECISION_FRAMES))
        trailing = np.where(
            finals, np.minimum(self._pending[slots], EDGE_SILENCE_FRAMES), 0)
        asked = np.flatnonzero(wanted)
        chosen = slots[asked]
        ends, costs, frame_sums = self._best(chosen, trailing[asked])
        # The scalar matcher's float arithmetic, element by element.
        n_speech = self._n_speech[chosen]
        lags = (frame_sums - self._frame_sum[chosen]) / n_speech
        distances = costs / n_speech
        known = distances <= MATCH_THRESHOLD
        heard: list[list[RecognizedWord]] = [[] for _ in slots]
        words = self._words_table.heard(
            ends[known], lags[known], distances[known],
            self._first_speech[chosen[known]],
            self._last_speech[chosen[known]],
            self._n_samples[chosen[known]] / SAMPLE_RATE, finals[asked][known])
        for j, found in zip(asked[known].tolist(), words, strict=True):
            heard[j] = found
        for j, distance in zip(asked[~known].tolist(),
                               distances[~known].tolist(), strict=True):
            heard[j] = self._placeholders(int(slots[j]),
                                          _confidence(distance))
        return heard

    def _best(self, slots: Ints, trailing: Ints
              ) -> tuple[Ints, Floats, Floats]:
        """Where each utterance's best path ends, its cost and its frame
        sum, after `trailing` silence steps that are not kept."""
        ends = np.zeros(len(slots), dtype=np.int64)
        costs, frame_sums = np.zeros(len(slots)), np.zeros(len(slots))
        locked = self._locked[slots]
        for group, beams in ((np.flatnonzero(~locked), False),
                             (np.flatnonzero(locked), True)):
            if not len(group):
                continue
            chosen = slots[group]
            carried: npt.NDArray[Any]
            if beams:
                cost = self._beam_cost[chosen]
                carried = self._beam_carried[chosen]
                lo, width = self._lo[chosen], self._width[chosen]
            else:
                rows = self._row[chosen]
                cost, carried = self._full_cost[rows], self._full_carried[rows]
                lo = np.zeros(len(group), dtype=np.int64)
                width = np.full(len(group), self._n_cells)
            steps = trailing[group]
            for t in range(int(steps.max(initial=0))):
                going = np.flatnonzero(steps > t)
                self._silence_step(cost, carried, lo, width, going, beams)
            best = cost[:, 2:].argmin(axis=1)
            at = np.arange(len(group))
            ends[group] = lo + best
            costs[group] = cost[at, 2 + best]
            frame_sums[group] = carried[at, 2 + best]
        return ends, costs, frame_sums

    def _silence_step(self, cost: Floats, carried: npt.NDArray[Any],
                      lo: Ints, width: Ints, rows: Ints, beams: bool
                      ) -> None:
        """A silent frame for `rows` of copies of paths (the lookahead
        of finals): beams follow their best path, whole rows do not."""
        sub_cost, sub_carried = cost[rows], carried[rows]
        if beams:
            sub_lo, sub_width = lo[rows], width[rows]
            silence = np.broadcast_to(_SILENCE_PROBE, (len(rows),
                                                      N_BANDS + 2))
            _advance_beams(self._windows, self._work, sub_cost,
                           sub_carried, sub_lo, sub_width, silence,
                           np.zeros(len(rows), dtype=np.bool_))
            lo[rows], width[rows] = sub_lo, sub_width
        else:
            _dtw_rows(sub_cost, sub_carried, self.lexicon.silence_distances,
                      self._work)
        cost[rows], carried[rows] = sub_cost, sub_carried

    def _placeholders(self, slot: int, confidence: float
                      ) -> list[RecognizedWord]:
        """Bursts are counted only now, from the levels kept since the
        last time: unknown speech is rare, and a burst needs no DTW."""
        bursts = self._bursts[slot]
        first = int(self._n_frames[slot]) - sum(
            len(levels) for levels, _ in self._unheard[slot])
        for levels, bands in self._unheard[slot]:
            for level, band in zip(levels.tolist(), bands.tolist(),
                                   strict=True):
                bursts.add(first, level, band)
                first += 1
        self._unheard[slot] = []
        return [
            self._word(slot, burst.placeholder(),
                       _frame_centre_s(burst.first) - HOP_S / 2,
                       _frame_centre_s(burst.last) + HOP_S / 2, confidence)
            for burst in bursts.word_like()
        ]

    def _word(self, slot: int, text: str, start: float, end: float,
              confidence: float) -> RecognizedWord:
        # A segment cut mid-word ends where its audio does.
        audio_s = int(self._n_samples[slot]) / SAMPLE_RATE
        start = min(max(start, 0.0), audio_s)
        end = min(max(end, start), audio_s)
        return RecognizedWord(text, start, end, confidence)


class _TemplateWords:
    """The lexicon's words in flat arrays: the words of many matches are
    chosen together, with `Matcher._template_words`'s float arithmetic.
    """

    def __init__(self, lexicon: Lexicon) -> None:
        templates = lexicon.templates
        self._firsts = np.array([t.first_frame for t in templates])
        self._n_words = np.array([len(t.words) for t in templates])
        self._first_word = np.cumsum(self._n_words) - self._n_words
        self._starts = np.concatenate([t.starts for t in templates])
        self._ends = np.concatenate([t.ends for t in templates])
        self._texts = [w.text for t in templates for w in t.words]

    def heard(self, end_frames: Ints, lags: Floats, distances: Floats,
              first_speech: Ints, last_speech: Ints, audio_s: Floats,
              finals: Bools) -> list[list[RecognizedWord]]:
        template = np.searchsorted(self._firsts, end_frames, "right") - 1
        # Template time minus segment time.
        shift = (lags - self._firsts[template]) * HOP_S
        counts = self._n_words[template]
        match = np.repeat(np.arange(len(template)), counts)
        word = (self._first_word[template][match] + np.arange(len(match))
                - np.repeat(np.cumsum(counts) - counts, counts))
        starts = self._starts[word] - shift[match]
        ends = self._ends[word] - shift[match]
        heard_from = _frame_centres(first_speech) - HOP_S / 2
        heard_to = _frame_centres(last_speech) + HOP_S / 2
        heard = (np.minimum(ends, heard_to[match])
                 - np.maximum(starts, heard_from[match]))
        share = np.where(finals, FINAL_WORD_SHARE, INTERIM_WORD_SHARE)
        chosen = np.flatnonzero(heard > (ends - starts) * share[match])
        # A segment cut mid-word ends where its audio does.
        until = audio_s[match[chosen]]
        starts = np.minimum(np.maximum(starts[chosen], 0.0), until)
        ends = np.minimum(np.maximum(ends[chosen], starts), until)
        confidence = [_confidence(d) for d in distances.tolist()]
        texts = self._texts
        words = [
            RecognizedWord(texts[w], start, end, confidence[m])
            for w, m, start, end in zip(
                word[chosen].tolist(), match[chosen].tolist(),
                starts.tolist(), ends.tolist(), strict=True)
        ]
        bounds = np.cumsum(np.bincount(match[chosen],
                                       minlength=len(template))).tolist()
        return [words[a:b] for a, b in zip([0, *bounds], bounds,
                                           strict=False)]


def _frame_centres(index: Ints) -> Floats:
    """`mock_matcher._frame_centre_s` of many frames."""
    centres: Floats = (index * HOP + FRAME / 2) / SAMPLE_RATE
    return centres


@dataclass(frozen=True)
class _Windows:
    """The lexicon's columns as beams read them: `by_window[:, lo]` is
    the window starting at lexicon frame `lo` (a view, no copy), and
    `by_frame` serves the windows the lexicon's end cuts short."""

    by_window: Floats32 | None  # (N_BANDS + 2, n - BEAM_WIDTH + 1, BEAM_WIDTH)
    by_frame: Floats32  # (n, N_BANDS + 2)

    @classmethod
    def of(cls, columns: Floats32) -> _Windows:
        wide_enough = columns.shape[1] >= BEAM_WIDTH
        return cls(sliding_window_view(columns, BEAM_WIDTH, axis=1)
                   if wide_enough else None,
                   np.ascontiguousarray(columns.T))

    def distances(self, probes: Floats32, lo: Ints, width: Ints
                  ) -> Floats32:
        """Each row's probe against its window, one matrix-vector product
        per row, laid out as chapter 4's (a contiguous copy of the
        windows takes another path in numpy, and rounds differently).
        Cells past the lexicon's end are unreachable."""
        n_cells = len(self.by_frame)
        distance = np.empty((len(lo), BEAM_WIDTH), dtype=np.float32)
        whole = width == BEAM_WIDTH
        if self.by_window is not None and whole.any():
            windows = self.by_window[:, lo[whole]].transpose(1, 0, 2)
            distance[whole] = (probes[whole][:, None, :] @ windows)[:, 0]
        cut = np.flatnonzero(~whole)
        if len(cut):
            cells = np.minimum(lo[cut, None] + _BEAM_CELLS, n_cells - 1)
            windows = self.by_frame[cells].transpose(0, 2, 1)
            ends = (probes[cut][:, None, :] @ windows)[:, 0]
            distance[cut] = np.where(width[cut, None] > _BEAM_CELLS, ends,
                                     np.inf)
        return distance


def _advance_beams(windows: _Windows, work: _Scratch, cost: Floats,
                   carried: Floats, lo: Ints, width: Ints,
                   probes: Floats32, speech: Bools) -> None:
    """One frame for beams: rows of BEAM_WIDTH + 2 cells, the window of
    each starting at lexicon frame `lo`, `width` cells wide."""
    distance = windows.distances(probes, lo, width)
    _dtw_rows(cost, carried, distance, work)
    np.add(carried[:, 2:], lo[:, None] + _BEAM_CELLS, out=carried[:, 2:],
           where=speech[:, None])
    best = cost[:, 2:].argmin(axis=1)
    # The beam follows its best path, BEAM_BEHIND cells behind it.
    follow = np.flatnonzero(best > width - BEAM_BEHIND)
    if len(follow):
        new_lo = lo[follow] + best[follow] - BEAM_BEHIND
        _move_beams(cost, carried, lo, width, follow, new_lo,
                    len(windows.by_frame))


def _move_beams(cost: Floats, carried: Floats, lo: Ints, width: Ints,
                rows: Ints, new_lo: Ints, n_cells: int) -> None:
    """Start the beams of `rows` at `new_lo`, keeping the cells both
    windows share (`Alignment._move`)."""
    new_width = np.minimum(BEAM_WIDTH, n_cells - new_lo)
    source = _BEAM_CELLS + (new_lo - lo[rows])[:, None]
    kept = (source < width[rows, None]) & (
        new_width[:, None] > _BEAM_CELLS)
    source = np.minimum(source, BEAM_WIDTH - 1)
    old_cost, old_carried = cost[rows, 2:], carried[rows, 2:]
    cost[rows, 2:] = np.where(
        kept, np.take_along_axis(old_cost, source, axis=1), np.inf)
    carried[rows, 2:] = np.where(
        kept, np.take_along_axis(old_carried, source, axis=1), 0.0)
    lo[rows], width[rows] = new_lo, new_width


@dataclass
class BankMatching:
    """`Matching` over one bank in this process: a batch of requests is
    one call of the bank. Its CPU work runs on the event loop; the
    service runs the bank in the matcher's worker process instead
    (`bank_worker`)."""

    lexicon: Lexicon
    idle_s: float = 60.0
    _bank: MatcherBank | None = field(default=None, init=False)
    _next_key: int = field(default=0, init=False)

    @property
    def bank(self) -> MatcherBank:
        if self._bank is None:
            self._bank = MatcherBank(self.lexicon, self.idle_s)
        return self._bank

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        self._next_key += 1
        return UtteranceDecoder(start_s, key=self._next_key)

    async def match(self, batch: Sequence[DecodeRequest]
                    ) -> list[list[RecognizedWord]]:
        jobs = [(r.decoder.key, r.audio, r.final) for r in batch]
        return self.bank.advance(jobs, time.monotonic())


def bank_worker(lexicon: Lexicon, idle_s: float) -> MatcherBank:
    """What `MatcherProcess(state=bank_worker)` holds in its worker: a
    bank, in place of chapter 4's matcher per utterance."""
    return MatcherBank(lexicon, idle_s)
