"""The recognition engine: a `Recognizer` Protocol and the mock behind it.

Chapter 4, "Inference". A streaming recogniser keeps per-utterance
decoder state (here an `UtteranceDecoder`, owned by the stream, never by
the engine) and advances many of them per call: `decode` takes a batch of
requests and returns one hypothesis each, so chapter 6 can batch across
streams. The mock recognises the repository's sample speech by its
sound, injects seeded word errors on request, and spends its model
time on a simulated accelerator. Its matcher does spend real CPU, on
the event loop by default; `matcher_thread` moves it to a worker thread,
which the benchmark measures: the matcher is Python, so the thread holds
the interpreter lock the loop needs, and the loop's lag grows rather
than shrinks. Taking it off the loop for real needs another process.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from ch04_streaming.accelerator import Accelerator
from ch04_streaming.mock_matcher import (
    SAMPLE_RATE,
    Lexicon,
    Matcher,
    TemplateWord,
)
from ch04_streaming.settings import fixture_file
from ch04_streaming.transcript import Hypothesis, Word
from ch04_streaming.word_errors import WordErrorInjector

TEMPLATE_KINDS = ("utterance", "conversation")


@dataclass
class UtteranceDecoder:
    """Decoder state of one utterance; the stream that owns it keeps it."""

    start_s: float  # stream time of the utterance's first sample
    matcher: Matcher | None = None  # None: an engine that keeps no state
    fed_samples: int = 0

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

    def new_utterance(self, start_s: float) -> UtteranceDecoder: ...

    async def decode(
        self, batch: Sequence[DecodeRequest]
    ) -> list[Hypothesis]:
        """Advance each request's decoder by its audio, in one batch."""
# --8<-- [end:recognizer_protocol]


@dataclass
class MockRecognizer:
    lexicon: Lexicon
    device: Accelerator
    errors: WordErrorInjector = field(default_factory=WordErrorInjector)
    matcher_thread: bool = False  # True: on one worker thread
    # One worker: more threads would only queue for the same interpreter
    # lock, and each would take it from the event loop in turn.
    _worker: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            1, thread_name_prefix="mock-matcher"),
        init=False, repr=False)

    @property
    def ready(self) -> bool:
        return self.device.ready

    async def start(self) -> None:
        await self.device.start()

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return UtteranceDecoder(start_s, self.lexicon.new_matcher())

    async def decode(
        self, batch: Sequence[DecodeRequest]
    ) -> list[Hypothesis]:
        if self.matcher_thread:
            loop = asyncio.get_running_loop()
            heard = await loop.run_in_executor(
                self._worker, self._match, batch)
        else:
            heard = self._match(batch)
        audio_s = sum(r.audio.size for r in batch) / SAMPLE_RATE
        await self.device.run(audio_s)
        # Errors are drawn here, on the loop, so a seed gives one result.
        return [
            Hypothesis(tuple(self.errors.apply(words)
                             if self.errors.active else words), r.final)
            for words, r in zip(heard, batch, strict=True)
        ]

    def _match(self, batch: Sequence[DecodeRequest]) -> list[list[Word]]:
        return [self._advance(request) for request in batch]

    def _advance(self, request: DecodeRequest) -> list[Word]:
        decoder = request.decoder
        assert decoder.matcher is not None
        decoder.matcher.feed(request.audio)
        decoder.fed_samples += request.audio.size
        return [
            Word(w.text, round(decoder.start_s + w.start, 3),
                 round(decoder.start_s + w.end, 3), round(w.confidence, 3))
            for w in decoder.matcher.words(final=request.final)
        ]


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

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return UtteranceDecoder(start_s)

    async def decode(
        self, batch: Sequence[DecodeRequest]
    ) -> list[Hypothesis]:
        for request in batch:
            request.decoder.fed_samples += request.audio.size
        return [Hypothesis((), r.final) for r in batch]


def load_lexicon(manifest_path: Path) -> Lexicon:
    """Templates from the sample-audio manifest's 16 kHz recordings."""
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
