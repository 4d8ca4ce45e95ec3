"""What each stream of a load run sends: a fixture, looped, cut once.

Chapter 6, "Handling multiple concurrent streams". Every stream of a
load run loops a fixture from the manifest, starting in the silence
before one of its utterances, so that streams are out of step with each
other and the recognizer hears whole words from the first utterance
on. A fixture is read and cut into chunks once, and every stream sends
the same chunk objects: a thousand streams hold one copy of the audio.
`Plan.heard_fixture` describes what one stream sent as a fixture of its
own, the manifest's utterances moved to the stream's own times, so
`examples.sli_records` scores it as it scores a single file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ch04_streaming.client import ClientAudio, load_audio
from examples.fixtures import AudioFixture, Manifest, Utterance, Word

LEAD_IN_S = 0.3  # silence before the utterance a stream starts with
LOOPED_KINDS = ("utterance", "conversation")


@dataclass(frozen=True)
class Lap:
    """One fixture cut into chunks of `chunk_s`, shared by all streams."""

    fixture: AudioFixture
    audio: ClientAudio  # encoding and rate; its payload is not sent
    chunks: tuple[bytes, ...]  # whole chunks only: the loop's seam
    chunk_s: float
    starts: tuple[int, ...]  # chunk indexes a stream may start at

    @property
    def lap_s(self) -> float:
        return len(self.chunks) * self.chunk_s


def cut(fixture: AudioFixture, chunk_ms: int = 100) -> Lap:
    """Read `fixture` and cut it into whole chunks of `chunk_ms`."""
    audio = load_audio(fixture.file())
    width = 2 if audio.encoding == "linear16" else 1
    step = audio.bytes_per_second * chunk_ms // 1000 // width * width
    whole = len(audio.payload) // step * step
    if not whole:
        raise ValueError(f"{fixture.id} is shorter than one chunk")
    chunks = tuple(audio.payload[i:i + step] for i in range(0, whole, step))
    chunk_s = step / audio.bytes_per_second
    starts = sorted({max(0, int((u.start - LEAD_IN_S) / chunk_s))
                     for u in fixture.utterances} or {0})
    return Lap(fixture, ClientAudio(b"", audio.encoding, audio.sample_rate),
               chunks, chunk_s, tuple(starts))


def default_fixtures(manifest: Manifest) -> list[AudioFixture]:
    """The manifest's utterance fixtures and its conversation."""
    return [f for f in manifest.fixtures
            if f.kind in LOOPED_KINDS and f.utterances]


@dataclass(frozen=True)
class Plan:
    """One stream's audio: `lap` from chunk `start`, `chunks` of it."""

    lap: Lap
    start: int
    chunks: int

    def chunk(self, k: int) -> bytes:
        """The `k`-th chunk the stream sends."""
        laps = self.lap.chunks
        return laps[(self.start + k) % len(laps)]

    def heard_fixture(self, chunks_sent: int,
                      endpointing_s: float) -> AudioFixture:
        """The fixture this stream sent, in its own stream times.

        Only utterances sent whole, with the trailing silence that ends
        them, are kept: one the stream was cut in is not scored.
        """
        lap, shift = self.lap, self.start * self.lap.chunk_s
        sent_s = chunks_sent * lap.chunk_s
        kept: list[Utterance] = []
        for turn in range(int(sent_s // lap.lap_s) + 2):
            offset = turn * lap.lap_s - shift
            for u in lap.fixture.utterances:
                start, end = u.start + offset, u.end + offset
                if start >= 0 and end + endpointing_s <= sent_s + 1e-9:
                    kept.append(moved(u, offset))
        return replace(lap.fixture, utterances=tuple(kept),
                       duration_s=round(sent_s, 6))


def moved(utterance: Utterance, offset: float) -> Utterance:
    return Utterance(
        round(utterance.start + offset, 6), round(utterance.end + offset, 6),
        utterance.text,
        tuple(Word(w.word, round(w.start + offset, 6),
                   round(w.end + offset, 6)) for w in utterance.words))


def plans(laps: Sequence[Lap], streams: int, chunks: int) -> list[Plan]:
    """Stream i loops laps[i % len(laps)], from the next of its starts
    each time that fixture comes round again."""
    out = []
    for i in range(streams):
        lap = laps[i % len(laps)]
        turn = i // len(laps)
        out.append(Plan(lap, lap.starts[turn % len(lap.starts)], chunks))
    return out
