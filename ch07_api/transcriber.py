"""A whole file through the streaming pipeline: segments as they come.

Chapter 7, "Synchronous vs asynchronous API patterns", on chapter 6's
engine. A file is not a different kind of request to the model: it is a
stream that arrives faster than real time. So a file is fed, a second
at a time, into chapter 4's `StreamSession` (its VAD cuts utterances,
its cap bounds the undecoded audio), whose decodes go to chapter 6's
cross-stream scheduler pinned to the model the request named. Each
final utterance is reported as a `Segment` the moment it is decoded,
which is what a streaming response sends on; the whole `Transcript` is
what a synchronous one waits for. Cancelling the call (a client gone,
an operation cancelled) cancels its decodes, and nothing of it runs on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np

from ch03_gpu.memory import DeviceOutOfMemoryError
from ch04_streaming.audio import MODEL_RATE, AudioDecoder, Encoding
from ch04_streaming.backpressure import PendingAudioCap
from ch04_streaming.engine import DecodeRequest, UtteranceDecoder
from ch04_streaming.scheduler import DecodeUnavailableError
from ch04_streaming.session import (
    SessionEvent,
    StreamOptions,
    StreamSession,
    TranscriptEvent,
)
from ch04_streaming.transcript import Hypothesis, Word
from ch04_streaming.vad import VadConfig, build_vad_gate
from ch06_pipeline import pipeline_scheduler
from ch06_pipeline.pipeline_scheduler import PipelineScheduler
from ch07_api.errors import (
    AcceleratorOutOfMemoryError,
    ApiError,
    InferenceTimeoutError,
    ModelNotReadyError,
    QueueFullError,
    UnavailableError,
)

log = logging.getLogger("ch07_api")

FEED_S = 1.0  # audio handed to the session at a time


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@dataclass(frozen=True)
class Transcript:
    duration_s: float
    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(w for s in self.segments for w in s.words)


OnSegment = Callable[[Segment], None]


@dataclass
class PinnedScheduler:
    """Chapter 4's `DecodeScheduler`, every utterance on one model."""

    scheduler: PipelineScheduler
    model: str

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return self.scheduler.new_utterance_on(self.model, start_s)

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        return await self.scheduler.decode(request)


class FileCadence:
    """No interims: decode in long steps, which a file can afford."""

    min_interim_s = 5.0
    show_interims = False


@dataclass
class Transcriber:
    scheduler: PipelineScheduler
    vad: VadConfig
    max_pending_s: float = 10.0

    async def run(self, samples: np.ndarray, model: str,
                  timeout_s: float,
                  on_segment: OnSegment = lambda segment: None,
                  speed: float = 0.0,
                  on_progress: Callable[[float], None] = lambda s: None,
                  ) -> Transcript:
        """Transcribe 16 kHz samples; call `on_segment` per final. With
        `speed`, feed at most that many seconds of audio per second
        (batch work that must leave room for live streams)."""
        try:
            async with asyncio.timeout(timeout_s):
                segments = await self._run(samples, model, on_segment,
                                           Pace(speed), on_progress)
        except TimeoutError:
            raise InferenceTimeoutError(
                f"inference took longer than {timeout_s:g} s") from None
        except DecodeUnavailableError as error:
            raise api_error_of(error) from error
        return Transcript(samples.size / MODEL_RATE, tuple(segments))

    async def _run(self, samples: np.ndarray, model: str,
                   on_segment: OnSegment, pace: Pace,
                   on_progress: Callable[[float], None]
                   ) -> list[Segment]:
        segments: list[Segment] = []

        def emit(event: SessionEvent) -> None:
            if isinstance(event, TranscriptEvent) and event.hypothesis.words:
                segment = segment_of(len(segments), event)
                segments.append(segment)
                on_segment(segment)

        cap = PendingAudioCap(self.max_pending_s)
        session = StreamSession(
            options=StreamOptions(interim_results=False),
            scheduler=PinnedScheduler(self.scheduler, model),
            audio=AudioDecoder(Encoding.FLOAT32, MODEL_RATE),
            vad=build_vad_gate(self.vad), emit=emit, cap=cap,
            cadence=FileCadence())
        decoding = asyncio.create_task(session.run())
        try:
            step = round(FEED_S * MODEL_RATE)
            for start in range(0, samples.size, step):
                block = samples[start:start + step]
                await pace.until(start / MODEL_RATE)
                await until_either(cap.make_room(block.size / MODEL_RATE),
                                   decoding)
                pcm = block.astype("<f4", copy=False)  # no copy: float32
                session.accept_audio(pcm.tobytes())
                on_progress(session.stats.decoded_s)
            session.finalize()
            await until_either(session.drained(), decoding)
        finally:
            decoding.cancel()
            await asyncio.gather(decoding, return_exceptions=True)
        return segments


@dataclass
class Pace:
    """Feed audio no faster than `speed` times real time (0: at once)."""

    speed: float
    clock: Callable[[], float] = time.monotonic
    _start: float | None = None

    async def until(self, audio_s: float) -> None:
        if self.speed <= 0:
            return
        if self._start is None:
            self._start = self.clock()
        due = self._start + audio_s / self.speed
        await asyncio.sleep(max(0.0, due - self.clock()))


async def until_either(waiting: Coroutine[Any, Any, None],
                       decoding: asyncio.Task[None]) -> None:
    """Await `waiting`, unless the decode loop fails first: then raise
    its error (a stream whose decodes fail would wait for ever)."""
    task = asyncio.ensure_future(waiting)
    try:
        await asyncio.wait({task, decoding},
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
    if decoding.done():
        decoding.result()  # raises the loop's error
        raise UnavailableError("decoding stopped before the audio ended")
    task.result()


def segment_of(index: int, event: TranscriptEvent) -> Segment:
    words = event.hypothesis.words
    return Segment(index, words[0].start, words[-1].end, words)


def api_error_of(error: DecodeUnavailableError) -> ApiError:
    """What a scheduler's refusal means to an API client."""
    causes = causes_of(error)
    if any(isinstance(c, DeviceOutOfMemoryError) for c in causes):
        return AcceleratorOutOfMemoryError(
            "the accelerator ran out of memory for this request; retry,"
            " or send shorter audio")
    if any(isinstance(c, pipeline_scheduler.ModelNotReadyError)
           for c in causes):
        return ModelNotReadyError(str(error))
    if any(isinstance(c, pipeline_scheduler.QueueFullError)
           for c in causes):
        return QueueFullError(str(error))
    if not isinstance(causes[-1], DecodeUnavailableError):
        # The engine's own fault: logged here, not shown to the client.
        log.warning("event=inference_failed error=%r", causes[-1])
        return UnavailableError("inference failed for this request;"
                                " retry it")
    return UnavailableError(str(error))


def causes_of(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__
    return chain
