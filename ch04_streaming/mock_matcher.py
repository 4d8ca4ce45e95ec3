"""The mock's matcher: how the mock recogniser knows the sample speech.

Chapter 4, "Inference". The mock engine must answer like a real one on
the repository's own fixtures: any of them, in any codec, rate and
chunking, comes back as its reference words at their times, decided by
the sound alone. Each 10 ms frame becomes a coarse spectral fingerprint
(the shape of its energy over twelve telephone-band bands); subsequence
dynamic time warping (DTW) aligns the stream with templates made from
the fixture recordings, one vectorised column per frame, and narrows to
a beam around the best path once the match is clear, so a stream costs
little after its first half second of speech. Speech that matches no
template gets placeholder words, one per burst of energy, so unknown
audio still yields deterministic, well-timed output.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.floating[Any]]
Floats = npt.NDArray[np.float64]
Floats32 = npt.NDArray[np.float32]

SAMPLE_RATE = 16_000
HOP = 160  # a frame every 10 ms
HOP_S = HOP / SAMPLE_RATE
FRAME = 400  # 25 ms
N_BANDS = 12
# Bands stay inside what 8 kHz telephone audio carries: with bands up to
# 7 kHz, the feasibility probe misread mu-law copies of the fixtures.
BAND_EDGES_HZ = np.geomspace(150.0, 3_800.0, N_BANDS + 1)
# In-band level (dB re full scale) under which a frame is silence. The
# fixtures' room noise sits near -63, the edges of their words above -45.
SILENCE_DB = -50.0

# Mean frame distance along the best path (0 same sound, 1 unrelated),
# calibrated on the fixtures. Their recordings, codec variants and
# conversation segments, cut at any frame phase, score at most 0.04.
# Speech the lexicon lacks (each fixture left out of it in turn, or
# reversed in time) scores at least 0.34, white noise 0.23, tones 0.43.
MATCH_THRESHOLD = 0.1
# Repeating or skipping a template frame costs extra, so a path keeps
# the template's timing unless the sound says otherwise.
STEP_PENALTY = 0.1
# The beam. Once LOCK_MIN_FRAMES of speech are in and the best path
# beats every rival outside its beam by LOCK_MARGIN per frame (or at
# the latest after LOCK_MAX_FRAMES), only BEAM_WIDTH template frames
# around it are followed: the fixtures lock within 0.2-0.5 s.
LOCK_MIN_FRAMES = 20
LOCK_MAX_FRAMES = 150
LOCK_MARGIN = 0.1
BEAM_WIDTH = 64
BEAM_BEHIND = 16  # frames kept behind the best cell when the beam moves
# Silence that borders the speech of a segment, up to this many frames
# on either side, is matched too: a word that ends the segment must end
# a phrase of the template, not sit inside one ("two." is not "to
# check"). Kept under the fixtures' shortest pause (0.3 s), so a real
# phrase boundary always has room for it.
EDGE_SILENCE_FRAMES = 20
# Interim answers wait for this much speech: a few frames resemble
# something in every template. From 10 to 20 frames, no interim of the
# fixtures showed a word its final corrected; below 15, first results
# come no sooner, as a word is shown only once most of it is heard.
DECISION_FRAMES = 15
# How much of a word must be heard before it is shown. A final keeps a
# word most of which it holds, so a segment cut mid-word gives the word
# to the side with more of it; an interim shows a word while it is being
# spoken, as streaming recognisers do: with half, a first word of half a
# second stayed hidden for 250 ms and broke the 300 ms rule.
FINAL_WORD_SHARE = 0.5
INTERIM_WORD_SHARE = 0.25

# Placeholders for unknown speech. A burst is speech frames with gaps
# of at most BURST_GAP_FRAMES. Shorter than MIN_BURST_FRAMES, it is a
# click; with less than MIN_SWING_DB between its loudest and quietest
# frame, it is steady noise (a fan, a hiss), not a word.
BURST_GAP_FRAMES = 2
MIN_BURST_FRAMES = 5
MIN_SWING_DB = 10.0
PLACEHOLDERS = ("ba", "da", "ga", "ka", "la", "ma", "na", "pa")

_SILENT = N_BANDS  # the fingerprint's extra dimension: silence
_EDGE_BINS = np.round(BAND_EDGES_HZ * FRAME / SAMPLE_RATE).astype(int)
_WINDOW = np.hanning(FRAME)
# Scales a band's power to the mean square of the signal inside it.
_POWER_SCALE = 2.0 / (FRAME * float(np.sum(_WINDOW**2)))
_TINY = 1e-12  # keeps the log finite on digital silence
_BARRIER = 1e6  # the distance to a frame between templates: unpayable


@dataclass(frozen=True)
class TemplateWord:
    """A word of a template recording, in seconds from its start."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class RecognizedWord:
    """A recognised word, in seconds from the first sample fed."""

    text: str
    start: float
    end: float
    confidence: float  # 0..1; 0.5 at the match threshold


def frame_count(n_samples: int) -> int:
    """How many whole frames `n_samples` samples hold."""
    return 0 if n_samples < FRAME else 1 + (n_samples - FRAME) // HOP


def _frame_centre_s(index: int) -> float:
    return (index * HOP + FRAME / 2) / SAMPLE_RATE


def _band_powers(samples: Samples) -> Floats:
    """Mean-square signal in each band, per frame: (n_frames, N_BANDS)."""
    starts = HOP * np.arange(frame_count(samples.size))[:, None]
    frames = samples.astype(np.float64)[starts + np.arange(FRAME)]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    first, last = _EDGE_BINS[0], _EDGE_BINS[-1]
    bands: Floats = np.add.reduceat(
        power[:, first:last], _EDGE_BINS[:-1] - first, axis=1
    )
    return bands * _POWER_SCALE


def _log_bands(powers: Floats) -> Floats:
    logs = np.log(powers + _TINY)
    # Without each frame's mean, the shape of the spectrum is compared,
    # not its loudness: a quiet caller sounds like a loud one.
    shapes: Floats = logs - logs.mean(axis=1, keepdims=True)
    return shapes


def log_band_features(samples: Samples) -> Floats:
    """Mono 16 kHz samples -> (n_frames, N_BANDS) features, HOP_S apart."""
    return _log_bands(_band_powers(np.asarray(samples)))


def fingerprints(samples: Samples) -> tuple[Floats, Floats]:
    """Unit vectors (n_frames, N_BANDS + 1) and levels in dB (n_frames,).

    A speech frame's vector is its normalised features; a silent frame's
    is the extra dimension's unit vector. One dot product then gives
    every distance (1 - dot): cosine distance between speech frames, 0
    between silent frames, 1 between speech and silence.
    """
    return fingerprints_of_powers(_band_powers(samples))


def fingerprints_of_powers(powers: Floats) -> tuple[Floats, Floats]:
    """`fingerprints` from band powers already computed (chapter 6's
    batched matcher computes a whole batch's at once)."""
    levels = 10.0 * np.log10(powers.sum(axis=1) + _TINY)
    features = _log_bands(powers)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    vectors = np.zeros((len(features), N_BANDS + 1))
    vectors[:, :N_BANDS] = features / np.maximum(norms, _TINY)
    silent = levels < SILENCE_DB
    vectors[silent] = 0.0
    vectors[silent, _SILENT] = 1.0
    return vectors, levels


def _dtw_step(paths: Floats, distance: npt.NDArray[Any]) -> None:
    """Advance DTW paths (row 0 cost, row 1 carried along) by a frame.

    Column k + 2 is cell k; each cell continues the cheapest of the
    cells 1 (diagonal), 0 (repeat) or 2 (skip) template frames back.
    """
    cost, carried = paths
    repeat_wins = cost[2:] <= cost[:-2]
    warped = np.minimum(cost[2:], cost[:-2])
    warped += STEP_PENALTY
    warped_carried = np.where(repeat_wins, carried[2:], carried[:-2])
    diagonal_wins = cost[1:-1] <= warped
    carried[2:] = np.where(diagonal_wins, carried[1:-1], warped_carried)
    np.minimum(warped, cost[1:-1], out=warped)
    warped += distance
    cost[2:] = warped


@dataclass(frozen=True, eq=False)
class Template:
    """One recording's place on the lexicon's frame axis."""

    name: str
    first_frame: int
    n_frames: int
    words: tuple[TemplateWord, ...]
    starts: Floats  # of the words, seconds from the recording's start
    ends: Floats


class Lexicon:
    """Templates of known speech, built once at start-up, shared read-only
    by all streams.

    The templates lie end to end on one frame axis, two barrier frames
    apart, so one vectorised column covers them all and no path runs
    from one recording into the next.
    """

    def __init__(self, vectors: Floats, templates: Sequence[Template]):
        if not templates:
            raise ValueError("a lexicon needs at least one recording")
        inside = np.zeros(len(vectors), dtype=bool)
        for t in templates:
            inside[t.first_frame : t.first_frame + t.n_frames] = True
        # Columns [-g, 1] (barriers [0, _BARRIER]): a segment frame's
        # probe [f, 1] times them is its distance to every frame.
        columns = np.vstack((-vectors.T, np.where(inside, 1.0, _BARRIER)))
        self._adopt(columns.astype(np.float32),
                    columns[_SILENT] + columns[-1], None, templates)

    def _adopt(self, columns: Floats32, silence_distances: Floats,
               lead_ins: Floats | None, templates: Sequence[Template]
               ) -> None:
        self.columns = columns
        self.silence_distances = silence_distances
        self.frame_numbers = np.arange(columns.shape[1], dtype=np.float64)
        self.lead_ins = self._lead_ins() if lead_ins is None else lead_ins
        self.templates = tuple(templates)
        self._firsts = [t.first_frame for t in self.templates]
        shared: list[npt.NDArray[Any]] = [
            self.columns, self.silence_distances, self.frame_numbers,
            self.lead_ins]
        for array in shared + [a for t in templates for a in (t.starts,
                                                               t.ends)]:
            array.setflags(write=False)

    @classmethod
    def from_recordings(
        cls,
        recordings: Iterable[tuple[str, Samples, Sequence[TemplateWord]]],
    ) -> Lexicon:
        """(name, mono 16 kHz samples of a whole recording, its words)."""
        parts: list[Floats] = []
        templates = []
        first = 0
        for name, samples, words in recordings:
            vectors, _ = fingerprints(np.asarray(samples))
            n = len(vectors)
            starts = np.array([w.start for w in words], dtype=np.float64)
            ends = np.array([w.end for w in words], dtype=np.float64)
            templates.append(
                Template(name, first, n, tuple(words), starts, ends)
            )
            parts += [vectors, np.zeros((2, N_BANDS + 1))]
            first += n + 2
        if not parts:
            raise ValueError("a lexicon needs at least one recording")
        return cls(np.concatenate(parts), templates)

    def parts(self) -> tuple[dict[str, npt.NDArray[Any]],
                             list[dict[str, Any]]]:
        """The arrays a matcher reads, and the templates as JSON: what
        `from_parts` needs to serve without the recordings (chapter 3's
        load cache stores them and maps them back)."""
        arrays: dict[str, npt.NDArray[Any]] = {
            "columns": self.columns,
            "silence_distances": self.silence_distances,
            "lead_ins": self.lead_ins,
        }
        templates: list[dict[str, Any]] = [
            {"name": t.name, "first_frame": t.first_frame,
             "n_frames": t.n_frames,
             "words": [[w.text, w.start, w.end] for w in t.words]}
            for t in self.templates
        ]
        return arrays, templates

    @classmethod
    def from_parts(cls, arrays: Mapping[str, npt.NDArray[Any]],
                   templates: Sequence[Mapping[str, Any]]) -> Lexicon:
        """A lexicon on arrays from `parts`, used as they are: memory
        maps stay maps, shared with every process that maps them."""
        rebuilt = []
        for t in templates:
            words = tuple(TemplateWord(str(text), float(start), float(end))
                          for text, start, end in t["words"])
            rebuilt.append(Template(
                str(t["name"]), int(t["first_frame"]), int(t["n_frames"]),
                words, np.array([w.start for w in words], dtype=np.float64),
                np.array([w.end for w in words], dtype=np.float64)))
        if not rebuilt:
            raise ValueError("a lexicon needs at least one recording")
        lexicon = cls.__new__(cls)
        lexicon._adopt(arrays["columns"], arrays["silence_distances"],
                       arrays["lead_ins"], rebuilt)
        return lexicon

    @property
    def n_frames(self) -> int:
        return len(self.frame_numbers)

    def _lead_ins(self) -> Floats:
        """Path costs after 0..EDGE_SILENCE_FRAMES frames of silence.

        The same for every segment, so computed once: a segment's
        alignment starts from the row for the silence before its first
        word (free start: before any frame, every path costs 0).
        """
        paths = np.zeros((2, self.n_frames + 2))
        paths[0, :2] = np.inf
        rows = [paths[0].copy()]
        for _ in range(EDGE_SILENCE_FRAMES):
            _dtw_step(paths, self.silence_distances)
            rows.append(paths[0].copy())
        return np.array(rows)

    def template_at(self, frame: int) -> Template:
        return self.templates[bisect.bisect_right(self._firsts, frame) - 1]

    def new_matcher(self) -> Matcher:
        return Matcher(self)


@dataclass(frozen=True)
class Match:
    """Where the best path ends and how well it fits."""

    end_frame: int  # on the lexicon's frame axis
    distance: float  # mean per speech frame
    lag: float  # template frame minus segment frame, in frames


class Alignment:
    """Incremental subsequence DTW of one segment against a lexicon.

    One column per segment frame, one cell per lexicon frame. A path
    starts at any template frame and may end at any; each step takes one
    segment frame and advances 1 template frame (diagonal), 0 or 2, so a
    column depends only on the previous one: a few numpy operations. Row
    0 of the state holds the cost of the best path ending in each cell,
    row 1 the sum of the template frames its speech frames matched, for
    its mean lag. Two guard columns of +inf cost on the left stand in
    for the cells outside the window.
    """

    def __init__(self, lexicon: Lexicon) -> None:
        self._lexicon = lexicon
        self._lo = 0  # the window's first lexicon frame
        self._paths: Floats = np.zeros((2, 0))
        self._locked = False
        self.n_speech = 0
        self._speech_frame_sum = 0  # of the segment's speech frames

    def start(self, leading_silence: int) -> None:
        """Begin with the silence before the first word, as it matched."""
        self._paths = np.zeros((2, self._lexicon.n_frames + 2))
        self._paths[0] = self._lexicon.lead_ins[leading_silence]

    def add_speech(self, probe: Floats32, segment_frame: int) -> None:
        lo, hi = self._window()
        _dtw_step(self._paths, probe @ self._lexicon.columns[:, lo:hi])
        self._paths[1, 2:] += self._lexicon.frame_numbers[lo:hi]
        self.n_speech += 1
        self._speech_frame_sum += segment_frame
        best = self._best_cell()
        if self._locked:
            self._follow(best)
        else:
            self._try_lock(best)

    def add_silence(self, n_frames: int) -> None:
        """A pause: silent frames between speech frames."""
        for _ in range(n_frames):
            lo, hi = self._window()
            _dtw_step(self._paths, self._lexicon.silence_distances[lo:hi])
            if self._locked:
                self._follow(self._best_cell())

    def best(self, trailing_silence: int = 0) -> Match:
        """The best path so far, as if `trailing_silence` more silent
        frames had come (they are not kept)."""
        if trailing_silence:
            saved = self._lo, self._paths.copy()
            self.add_silence(trailing_silence)
            try:
                return self.best()
            finally:
                self._lo, self._paths = saved
        k = self._best_cell()
        cost, frame_sum = self._paths[:, 2 + k].tolist()
        lag = (frame_sum - self._speech_frame_sum) / self.n_speech
        return Match(self._lo + k, cost / self.n_speech, lag)

    def _window(self) -> tuple[int, int]:
        return self._lo, self._lo + self._paths.shape[1] - 2

    def _best_cell(self) -> int:
        return int(self._paths[0, 2:].argmin())

    def _try_lock(self, best: int) -> None:
        if self.n_speech < LOCK_MIN_FRAMES:
            return
        costs = self._paths[0, 2:]
        lo = max(0, best - BEAM_BEHIND)
        hi = lo + BEAM_WIDTH
        rival = min(costs[:lo].min(initial=np.inf),
                    costs[hi:].min(initial=np.inf))
        lead = (rival - costs[best]) / self.n_speech
        if lead >= LOCK_MARGIN or self.n_speech >= LOCK_MAX_FRAMES:
            self._locked = True
            self._move(lo)

    def _follow(self, best: int) -> None:
        if best > self._paths.shape[1] - 2 - BEAM_BEHIND:
            self._move(self._lo + best - BEAM_BEHIND)

    def _move(self, lo: int) -> None:
        """Start the window at lexicon frame `lo`, BEAM_WIDTH wide."""
        hi = min(lo + BEAM_WIDTH, self._lexicon.n_frames)
        old_lo, old_hi = self._window()
        paths = np.zeros((2, hi - lo + 2))
        paths[0] = np.inf
        a, b = max(lo, old_lo), min(hi, old_hi)  # in both windows
        if a < b:
            paths[:, 2 + a - lo : 2 + b - lo] = (
                self._paths[:, 2 + a - old_lo : 2 + b - old_lo]
            )
        self._lo, self._paths = lo, paths


@dataclass
class Burst:
    """A run of speech frames, named when no template matches."""

    first: int
    last: int
    quietest_db: float
    loudest_db: float
    loudest_band: int  # the strongest band of the loudest frame

    def extend(self, frame: int, level: float, band: int) -> None:
        self.last = frame
        self.quietest_db = min(self.quietest_db, level)
        if level > self.loudest_db:
            self.loudest_db, self.loudest_band = level, band

    @property
    def is_word_like(self) -> bool:
        long_enough = self.last - self.first + 1 >= MIN_BURST_FRAMES
        return long_enough and (
            self.loudest_db - self.quietest_db >= MIN_SWING_DB
        )

    def placeholder(self) -> str:
        # Coarse features, so the word depends on the sound alone and
        # never on how the audio was chunked.
        duration = (self.last - self.first + 1) // 5
        digest = zlib.crc32(f"{duration}:{self.loudest_band}".encode())
        return PLACEHOLDERS[digest % len(PLACEHOLDERS)]


class Bursts:
    """Bursts of speech energy in a segment, kept as frames arrive."""

    def __init__(self) -> None:
        self._done: list[Burst] = []
        self._open: Burst | None = None
        self._silent_run = 0

    def add(self, frame: int, level: float, band: int) -> None:
        if level < SILENCE_DB:
            self._silent_run += 1
            if self._open and self._silent_run > BURST_GAP_FRAMES:
                self._done.append(self._open)
                self._open = None
            return
        self._silent_run = 0
        if self._open is None:
            self._open = Burst(frame, frame, level, level, band)
        self._open.extend(frame, level, band)

    def word_like(self) -> list[Burst]:
        bursts = self._done + ([self._open] if self._open else [])
        return [b for b in bursts if b.is_word_like]


def _confidence(distance: float) -> float:
    """1 for a perfect match, 0.5 at the threshold, 0 at twice it."""
    return min(1.0, max(0.0, 1.0 - distance / (2 * MATCH_THRESHOLD)))


def _as_samples(samples: Samples) -> Floats32:
    array = np.asarray(samples)
    if array.ndim != 1 or array.dtype.kind != "f":
        raise ValueError(
            f"expected mono float samples at {SAMPLE_RATE} Hz, got"
            f" {array.dtype} of shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError("samples must be finite, not NaN or inf")
    return array.astype(np.float32, copy=False)


class Matcher:
    """Per-segment incremental state. One per utterance being recognised;
    discarded at its end."""

    def __init__(self, lexicon: Lexicon) -> None:
        self._lexicon = lexicon
        self._alignment = Alignment(lexicon)
        self._bursts = Bursts()
        self._leftover = np.zeros(0, dtype=np.float32)
        self._n_samples = 0
        self._n_frames = 0
        self._first_speech = -1
        self._last_speech = -1
        self._pending_silence = 0

    @property
    def audio_s(self) -> float:
        """Seconds of audio fed so far."""
        return self._n_samples / SAMPLE_RATE

    def feed(self, samples: Samples) -> None:
        """Append samples of any length; a partial frame waits for more."""
        chunk = _as_samples(samples)
        self._n_samples += chunk.size
        audio = np.concatenate((self._leftover, chunk))
        vectors, levels = fingerprints(audio)
        self._leftover = audio[len(levels) * HOP :]
        probes = np.ones((len(vectors), N_BANDS + 2), dtype=np.float32)
        probes[:, :-1] = vectors
        bands = vectors[:, :N_BANDS].argmax(axis=1)
        for probe, level, band in zip(
            probes, levels.tolist(), bands.tolist(), strict=True
        ):
            self._take_frame(probe, level, band)

    def words(self, final: bool) -> list[RecognizedWord]:
        """The words heard so far, or in the whole segment if `final`.

        An interim answer is the best path so far, so its last word may
        still change; it stays empty until DECISION_FRAMES of speech. A
        final one also weighs the silence after the last word.
        """
        speech = self._alignment.n_speech
        if not speech or (not final and speech < DECISION_FRAMES):
            return []
        trailing = min(self._pending_silence, EDGE_SILENCE_FRAMES)
        match = self._alignment.best(trailing if final else 0)
        if match.distance <= MATCH_THRESHOLD:
            return self._template_words(match, final)
        return self._placeholders(_confidence(match.distance))

    def _take_frame(self, probe: Floats32, level: float, band: int) -> None:
        frame = self._n_frames
        self._n_frames += 1
        self._bursts.add(frame, level, band)
        if level < SILENCE_DB:
            self._pending_silence += 1
            return
        # Silence joins the alignment once speech follows it: the whole
        # of a pause, only the edge of the silence before the first word.
        if self._first_speech < 0:
            leading = min(self._pending_silence, EDGE_SILENCE_FRAMES)
            self._alignment.start(leading)
            self._first_speech = frame
        else:
            self._alignment.add_silence(self._pending_silence)
        self._pending_silence = 0
        self._last_speech = frame
        self._alignment.add_speech(probe, frame)

    def _template_words(self, match: Match, final: bool
                        ) -> list[RecognizedWord]:
        template = self._lexicon.template_at(match.end_frame)
        # Template time minus segment time.
        shift = (match.lag - template.first_frame) * HOP_S
        starts, ends = template.starts - shift, template.ends - shift
        heard_from = _frame_centre_s(self._first_speech) - HOP_S / 2
        heard_to = _frame_centre_s(self._last_speech) + HOP_S / 2
        heard = np.minimum(ends, heard_to) - np.maximum(starts, heard_from)
        share = FINAL_WORD_SHARE if final else INTERIM_WORD_SHARE
        chosen = np.flatnonzero(heard > (ends - starts) * share).tolist()
        confidence = _confidence(match.distance)
        return [
            self._word(template.words[k].text, float(starts[k]),
                       float(ends[k]), confidence)
            for k in chosen
        ]

    def _placeholders(self, confidence: float) -> list[RecognizedWord]:
        return [
            self._word(
                burst.placeholder(),
                _frame_centre_s(burst.first) - HOP_S / 2,
                _frame_centre_s(burst.last) + HOP_S / 2,
                confidence,
            )
            for burst in self._bursts.word_like()
        ]

    def _word(
        self, text: str, start: float, end: float, confidence: float
    ) -> RecognizedWord:
        # A segment cut mid-word ends where its audio does.
        start = min(max(start, 0.0), self.audio_s)
        end = min(max(end, start), self.audio_s)
        return RecognizedWord(text, start, end, confidence)
