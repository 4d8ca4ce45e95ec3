"""The recognition engine: a `Recognizer` Protocol and the mock behind it.

Chapter 4, "Inference". A streaming recogniser keeps per-utterance
decoder state and advances many utterances per call: `decode` takes a
batch of requests and returns one hypothesis each, so chapter 6 can
batch across streams. The mock recognises the repository's sample
speech by its sound, injects seeded word errors on request, and spends
its model time on a simulated accelerator. Its matcher spends real CPU:
`Matching` says where. `LocalMatching` keeps each matcher in its
stream's decoder and runs it on the event loop (tests, tools); the
service runs them in a worker process (`matcher_process.py`), as a
model server would run its model. Each hypothesis carries its share
of its batch's device time (`device_shares`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ch03_gpu.device import Accelerator
from ch03_gpu.load_cache import CacheEntry, LoadCache
from ch03_gpu.phases import mark
from ch04_streaming import mock_matcher
from ch04_streaming.mock_matcher import (
    SAMPLE_RATE,
    Lexicon,
    Matcher,
    RecognizedWord,
    TemplateWord,
)
from ch04_streaming.transcript import Hypothesis, Word
from ch04_streaming.word_errors import WordErrorInjector

TEMPLATE_KINDS = ("utterance", "conversation")
# The layout of the lexicon's cache entry (`Lexicon.parts`): a change
# to it must change this number, so old entries are not read as new.
LEXICON_FORMAT = 1


@dataclass
class UtteranceDecoder:
    """Decoder state of one utterance; the stream that owns it keeps it."""

    start_s: float  # stream time of the utterance's first sample
    matcher: Matcher | None = None  # None: the engine keeps the state
    key: int = 0  # the engine's name for the utterance, if it keeps it
    fed_samples: int = 0
    # What a scheduler keeps with the utterance (chapter 6: the model
    # that decodes it, its trace span); chapter 4 keeps nothing.
    tag: object = None

    @property
    def end_s(self) -> float:
        """Stream time of the end of the audio decoded so far."""
        return self.start_s + self.fed_samples / SAMPLE_RATE


@dataclass(frozen=True)
class DecodeRequest:
    decoder: UtteranceDecoder
    audio: np.ndarray  # float32 16 kHz samples not yet decoded
    final: bool


# --8<-- [start:recognizer_protocol]
class Recognizer(Protocol):
    """What the session needs of an engine, mock or real."""

    @property
    def ready(self) -> bool: ...

    async def start(self) -> None:
        """Load and warm up; `ready` is False until this returns."""

    async def stop(self) -> None:
        """Let go of what `start` took (workers, device memory)."""

    def new_utterance(self, start_s: float) -> UtteranceDecoder: ...

    async def decode(
        self, batch: Sequence[DecodeRequest]
    ) -> list[Hypothesis]:
        """Advance each request's decoder by its audio, in one batch."""
# --8<-- [end:recognizer_protocol]


class Matching(Protocol):
    """Where the mock's matchers keep their state and spend their CPU."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def new_utterance(self, start_s: float) -> UtteranceDecoder: ...

    async def match(self, batch: Sequence[DecodeRequest]
                    ) -> list[list[RecognizedWord]]:
        """Feed each request's audio to its matcher; the words heard."""


@dataclass
class LocalMatching:
    """Matchers in this process, each kept by its stream's decoder; the
    CPU work runs on the event loop, between other streams' I/O."""

    lexicon: Lexicon

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return UtteranceDecoder(start_s, self.lexicon.new_matcher())

    async def match(self, batch: Sequence[DecodeRequest]
                    ) -> list[list[RecognizedWord]]:
        heard = []
        for request in batch:
            matcher = request.decoder.matcher
            assert matcher is not None
            matcher.feed(request.audio)
            heard.append(matcher.words(final=request.final))
        return heard


@dataclass
class MockRecognizer:
    matching: Matching
    device: Accelerator
    errors: WordErrorInjector = field(default_factory=WordErrorInjector)
    warmup_decodes: int = 0  # run before `ready`; the service runs one
    # The model's device time per audio second, relative to the
    # profile's: a smaller model (chapter 6's cheaper fallback) is < 1.
    compute_scale: float = 1.0
    _warm: bool = field(default=False, init=False)

    @property
    def ready(self) -> bool:
        return self._warm and self.device.ready

    async def start(self) -> None:
        if self._warm:
            return  # started ahead, as a warm pool's spare is
        await self.matching.start()
        await self.device.start()
        # The first decode pays for what happens once: the worker's
        # first FFTs and pickles, the first touch of the lexicon's
        # mapped pages. Ready only after it, so no client pays for it.
        for _ in range(self.warmup_decodes):
            decoder = self.new_utterance(0.0)
            await self.decode(
                [DecodeRequest(decoder, warm_up_audio(), final=True)])
        self._warm = True
        mark("ready")

    async def stop(self) -> None:
        await self.matching.stop()

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return self.matching.new_utterance(start_s)

    async def decode(
        self, batch: Sequence[DecodeRequest]
    ) -> list[Hypothesis]:
        # A batch the device cannot hold is refused before any decoder
        # changes, so a scheduler may split it and retry.
        audio_s = sum(r.audio.size for r in batch) / SAMPLE_RATE
        self.device.check_fits(audio_s)
        # The matcher's CPU work runs while the device is busy, as a
        # model's host-side work overlaps its kernels.
        device_s, heard = await asyncio.gather(
            self.device.run(audio_s * self.compute_scale),
            self.matching.match(batch))
        for request in batch:
            request.decoder.fed_samples += request.audio.size
        shares = device_shares(device_s, [r.audio.size for r in batch])
        return [self._hypothesis(request, words, share)
                for request, words, share
                in zip(batch, heard, shares, strict=True)]

    def _hypothesis(self, request: DecodeRequest,
                    heard: list[RecognizedWord],
                    device_s: float) -> Hypothesis:
        start = request.decoder.start_s
        words = [
            Word(w.text, round(start + w.start, 3), round(start + w.end, 3),
                 round(w.confidence, 3))
            for w in heard
        ]
        if self.errors.active:
            words = self.errors.apply(words)
        return Hypothesis(tuple(words), request.final, device_s)


# --8<-- [start:device_shares]
def device_shares(device_s: float, samples: Sequence[int]) -> list[float]:
    """A batch's device time, split between its requests.

    A batch of one gets all of it. A shared batch is split in proportion
    to each request's audio, the part of the cost that grows with it;
    the fixed launch cost is split the same way, so the shares always
    add up to the batch's time. A batch with no audio at all (finals
    that only close their utterances) is split equally.
    """
    total = sum(samples)
    if total == 0:
        return [device_s / len(samples)] * len(samples)
    return [device_s * size / total for size in samples]
# --8<-- [end:device_shares]


@dataclass
class NullRecognizer:
    """Model time zero and no model: answers at once, hears no words.

    For measuring the serving path alone (VAD, sessions, dialects,
    transport), as the benchmark does beside the full mock.
    """

    device: Accelerator

    @property
    def ready(self) -> bool:
        return self.device.ready

    async def start(self) -> None:
        await self.device.start()
        mark("ready")

    async def stop(self) -> None:
        return None

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return UtteranceDecoder(start_s)

    async def decode(
        self, batch: Sequence[DecodeRequest]
    ) -> list[Hypothesis]:
        for request in batch:
            request.decoder.fed_samples += request.audio.size
        return [Hypothesis((), r.final) for r in batch]


def warm_up_audio(seconds: float = 1.0) -> np.ndarray:
    """Four bursts a second of seeded noise: sound loud enough to be
    matched, so a warm-up decode runs the whole matching path."""
    rng = np.random.default_rng(0)
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    envelope = 0.5 * (1.0 - np.cos(2 * np.pi * 4.0 * t))
    return (0.1 * envelope * rng.standard_normal(t.size)).astype(np.float32)


def load_lexicon(manifest_path: Path, cache_dir: Path | None = None
                 ) -> Lexicon:
    """The templates of the manifest's recordings: from `cache_dir`,
    memory-mapped, when an entry there is fresh; built otherwise."""
    if cache_dir is None:
        return build_lexicon(manifest_path)
    cache = LoadCache(cache_dir, "lexicon", LEXICON_FORMAT)

    def build() -> CacheEntry:
        arrays, templates = build_lexicon(manifest_path).parts()
        return CacheEntry(arrays, {"templates": templates})

    # The manifest holds each recording's SHA-256, so a changed
    # recording changes it; the matcher's code decides what the
    # templates are, so a change to it must miss too.
    sources = [manifest_path.read_bytes(),
               Path(mock_matcher.__file__).read_bytes()]
    entry, outcome = cache.load_or_build(sources, build)
    mark(f"lexicon_{outcome}")
    return Lexicon.from_parts(entry.arrays, entry.meta["templates"])


def build_lexicon(manifest_path: Path) -> Lexicon:
    """Templates from the sample-audio manifest's 16 kHz recordings."""
    # Imported here, not at the top: reading recordings needs
    # libsndfile, and finding them the settings (which load pydantic):
    # ~0.1 s that a matcher mapping its cached templates never spends.
    import soundfile as sf

    from ch04_streaming.settings import fixture_file

    manifest = json.loads(manifest_path.read_text())
    recordings = []
    for fixture in manifest["fixtures"]:
        if fixture["kind"] not in TEMPLATE_KINDS:
            continue
        path = fixture_file(manifest_path, fixture["path"])
        samples, rate = sf.read(path, dtype="float32")
        if rate != SAMPLE_RATE:
            raise ValueError(f"{fixture['path']}: templates are 16 kHz")
        words = [
            TemplateWord(w["word"], w["start"], w["end"])
            for u in fixture["utterances"]
            for w in u["words"]
        ]
        recordings.append((fixture["id"], samples, words))
    return Lexicon.from_recordings(recordings)
