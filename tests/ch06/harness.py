"""Helpers for chapter 6 tests: the pipeline in this process, and fakes.

`running_pipeline` builds the real pipeline (both servers, the shared
scheduler, the degradation policy) around the mock engine on a zero-cost
device, matching on the event loop, so tests wait on messages, never on
simulated time; a test passes the tracer, models or settings it needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry.trace import Tracer

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.auth import ApiKeys
from ch04_streaming.engine import (
    DecodeRequest,
    LocalMatching,
    MockRecognizer,
    Recognizer,
    UtteranceDecoder,
)
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.transcript import Hypothesis, Word
from ch06_pipeline.app import Pipeline, build_pipeline
from ch06_pipeline.pipeline_scheduler import CHEAPER, FULL
from ch06_pipeline.settings import PipelineSettings, parse_pipeline_settings

KEY = "test-key"
TIMEOUT_S = 30.0


def mock_models(lexicon: Lexicon, device: Accelerator | None = None
                ) -> dict[str, Recognizer]:
    device = device or Accelerator(PROFILES["zero"])
    matching = LocalMatching(lexicon)
    return {FULL: MockRecognizer(matching, device),
            CHEAPER: MockRecognizer(matching, device, compute_scale=0.25)}


def pipeline_settings(*flags: str, **changes: Any) -> PipelineSettings:
    settings = parse_pipeline_settings(list(flags), env={})
    speech = replace(settings.speech, **changes) if changes else None
    return replace(settings, speech=speech) if speech else settings


@asynccontextmanager
async def running_pipeline(
    lexicon: Lexicon, *flags: str, tracer: Tracer | None = None,
    models: dict[str, Recognizer] | None = None, ready: bool = True,
    **speech: Any,
) -> AsyncIterator[Pipeline]:
    """The pipeline on free ports, with chapter 4's settings changed by
    `speech`; stopped on the way out."""
    settings = pipeline_settings(*flags, **speech)
    pipeline = build_pipeline(settings, ApiKeys.of(KEY), tracer,
                              models or mock_models(lexicon))
    await pipeline.start("127.0.0.1", 0, 0)
    if ready:
        await pipeline.start_models()
    try:
        yield pipeline
    finally:
        async with asyncio.timeout(TIMEOUT_S):
            await pipeline.stop()


@dataclass
class FakeEngine:
    """A recogniser that records its batches; it fails a batch holding
    audio of the `poison` length, as a real engine fails on one item."""

    poison: int = -1
    ready: bool = True
    batches: list[list[int]] = field(default_factory=list)
    _keys: int = 0

    async def start(self) -> None:
        self.ready = True

    async def stop(self) -> None:
        return None

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        self._keys += 1
        return UtteranceDecoder(start_s, key=self._keys)

    async def decode(self, batch: Sequence[DecodeRequest]
                     ) -> list[Hypothesis]:
        sizes = [r.audio.size for r in batch]
        self.batches.append(sizes)
        if self.poison in sizes:
            raise ValueError(f"cannot decode {self.poison} samples")
        await asyncio.sleep(0)
        return [Hypothesis((Word(str(r.audio.size), 0.0, 0.1, 1.0),),
                           r.final) for r in batch]
