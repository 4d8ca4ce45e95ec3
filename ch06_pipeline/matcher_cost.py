"""What the mock's matching costs per stream: one at a time, or batched.

Chapter 6, "Handling multiple concurrent streams". N streams play the
manifest's utterance fixtures in 100 ms chunks, starting at staggered
times so that every call mixes streams in silence, matching against
the whole lexicon, following their beams and finishing. The same calls
go to chapter 4's `WorkerState` (a matcher per utterance, advanced one
after another) and to the `MatcherBank` (all of them advanced
together); the figure is CPU milliseconds per second of audio per
stream, measured with `time.process_time`, so other work on the
machine inflates it less than it would a wall-clock figure.

    python -m ch06_pipeline.matcher_cost --streams 200
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ch04_streaming.engine import load_lexicon
from ch04_streaming.matcher_process import Job, WorkerLike, WorkerState
from ch04_streaming.mock_matcher import SAMPLE_RATE, Lexicon
from ch04_streaming.settings import DEFAULT_MANIFEST, fixture_file
from ch06_pipeline.batched_matcher import MatcherBank

Audio = npt.NDArray[np.float32]
CHUNK_S = 0.1
MAX_STAGGER_CALLS = 30  # streams start up to 3 s apart


@dataclass(frozen=True)
class MatchingCost:
    """CPU milliseconds per stream-second of audio, both ways."""

    streams: int
    stream_seconds: float  # audio matched, summed over the streams
    per_stream_ms: float  # chapter 4: one matcher after another
    batched_ms: float  # the bank: all streams' steps together

    @property
    def speedup(self) -> float:
        return self.per_stream_ms / self.batched_ms


def utterance_recordings(manifest: Path = DEFAULT_MANIFEST) -> list[Audio]:
    """The manifest's utterance fixtures, 16 kHz mono."""
    import soundfile as sf  # libsndfile: only when measuring

    listed = json.loads(manifest.read_text())["fixtures"]
    recordings = []
    for fixture in listed:
        if fixture["kind"] != "utterance":
            continue
        samples, rate = sf.read(fixture_file(manifest, fixture["path"]),
                                dtype="float32")
        if rate != SAMPLE_RATE:
            raise ValueError(f"{fixture['path']}: expected 16 kHz")
        recordings.append(samples)
    return recordings


def staggered_calls(recordings: Sequence[Audio], n_streams: int,
                    seconds: float | None = None, seed: int = 0
                    ) -> list[list[Job]]:
    """The jobs of each call: stream k plays recording k mod len (its
    first `seconds`, if given) in CHUNK_S chunks, from a seeded random
    call on; its last chunk is its final."""
    rng = np.random.default_rng(seed)
    step = round(CHUNK_S * SAMPLE_RATE)
    plans = []
    for key in range(n_streams):
        audio = recordings[key % len(recordings)]
        if seconds is not None:
            audio = audio[: round(seconds * SAMPLE_RATE)]
        pieces = [audio[i : i + step] for i in range(0, audio.size, step)]
        plans.append((key, int(rng.integers(0, MAX_STAGGER_CALLS)), pieces))
    n_calls = max(start + len(pieces) for _, start, pieces in plans)
    calls: list[list[Job]] = [[] for _ in range(n_calls)]
    for key, start, pieces in plans:
        for i, piece in enumerate(pieces):
            calls[start + i].append((key, piece, i == len(pieces) - 1))
    return calls


def cpu_ms(state: WorkerLike, calls: Sequence[Sequence[Job]]) -> float:
    """CPU milliseconds `state` spends on the calls, 100 ms apart."""
    started = time.process_time()
    for i, jobs in enumerate(calls):
        state.advance(jobs, now=i * CHUNK_S)
    return (time.process_time() - started) * 1000.0


def measure_matching_cost(lexicon: Lexicon, n_streams: int,
                          recordings: Sequence[Audio] | None = None,
                          seconds: float | None = None, repeats: int = 1
                          ) -> MatchingCost:
    """Both ways on the same calls; the least of `repeats` runs each, as
    other work on the machine only ever adds to a run's CPU time."""
    calls = staggered_calls(recordings or utterance_recordings(),
                            n_streams, seconds)
    audio_s = sum(a.size for jobs in calls for _, a, _ in jobs) / SAMPLE_RATE
    scalar = min(cpu_ms(WorkerState(lexicon, 60.0), calls)
                 for _ in range(repeats))
    batched = min(cpu_ms(MatcherBank(lexicon, 60.0), calls)
                  for _ in range(repeats))
    return MatchingCost(n_streams, audio_s, scalar / audio_s,
                        batched / audio_s)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch06_pipeline.matcher_cost")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=None,
                        help="play only the first seconds of each fixture")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    args = parser.parse_args(argv)
    cost = measure_matching_cost(
        load_lexicon(args.manifest), args.streams,
        utterance_recordings(args.manifest), args.seconds, args.repeats)
    print(f"{cost.streams} streams, {cost.stream_seconds:.0f} s of audio:"
          f" ms of CPU per stream-second: per stream"
          f" {cost.per_stream_ms:.3f}, batched {cost.batched_ms:.3f}"
          f" ({cost.speedup:.1f}x less)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
