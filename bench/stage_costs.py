"""What each stage of the chapter 4 path costs, per 100 ms chunk.

The load benchmark gives the service's CPU as one number; this splits
it. Each stage runs in this process over every 100 ms chunk of the long
conversation, as one stream would see them, and the best of a few
passes is kept (the least disturbed by anything else on the machine).
Under load the same work costs more (caches are shared by hundreds of
streams), so these are floors, not shares of the loaded figure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import numpy as np
import webrtcvad

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.audio import (
    MODEL_RATE,
    AudioDecoder,
    Encoding,
    Framer,
    to_pcm16,
)
from ch04_streaming.dialects.deepgram import (
    ResultsMetadata,
    results_message,
)
from ch04_streaming.engine import NullRecognizer
from ch04_streaming.scheduler import DirectScheduler
from ch04_streaming.session import (
    StreamOptions,
    StreamSession,
    TranscriptEvent,
)
from ch04_streaming.transcript import Hypothesis, Word
from ch04_streaming.vad import VadConfig, build_vad_gate, spectral_flatness

Frames = list[np.ndarray]  # one (frames, samples) array per chunk


def linear16() -> AudioDecoder:
    return AudioDecoder(Encoding.LINEAR16, MODEL_RATE)


def decode(chunks: Sequence[bytes]) -> None:
    decoder = linear16()
    for chunk in chunks:
        decoder.decode(chunk)


def frames_of(chunks: Sequence[bytes]) -> Frames:
    decoder, framer = linear16(), Framer()
    return [framer.frames(decoder.decode(chunk)) for chunk in chunks]


def level_floor(all_frames: Frames) -> None:
    for frames in all_frames:
        np.einsum("ij,ij->i", frames, frames)


def flatness_guard(all_frames: Frames) -> None:
    for frames in all_frames:
        spectral_flatness(frames)


def pcm16(all_frames: Frames) -> None:
    for frames in all_frames:
        to_pcm16(frames)


def webrtcvad_alone(all_frames: Frames) -> Callable[[], None]:
    """webrtcvad on every frame, its PCM input made beforehand."""
    vad, pcm = webrtcvad.Vad(2), [to_pcm16(f) for f in all_frames]
    size = 2 * all_frames[0].shape[1]

    def run() -> None:
        for frames, data in zip(all_frames, pcm, strict=True):
            for i in range(len(frames)):
                vad.is_speech(data[i * size : (i + 1) * size], MODEL_RATE)

    return run


def vad_gate(chunks: Sequence[bytes]) -> None:
    decoder, gate = linear16(), build_vad_gate(VadConfig())
    for chunk in chunks:
        gate.push(decoder.decode(chunk))


def session(chunks: Sequence[bytes]) -> None:
    """Each chunk through `accept_audio`, then the decode loop's turn
    with a model that answers at once."""

    async def stream() -> None:
        session = StreamSession(
            options=StreamOptions(interim_results=True),
            scheduler=DirectScheduler(
                NullRecognizer(Accelerator(PROFILES["zero"]))),
            audio=linear16(), vad=build_vad_gate(VadConfig()),
            emit=lambda event: None)
        decoding = asyncio.create_task(session.run())
        for chunk in chunks:
            session.accept_audio(chunk)
            await session.drained()
        decoding.cancel()

    asyncio.run(stream())


def result_message(chunks: Sequence[bytes]) -> None:
    words = tuple(Word(f"w{i}", i * 0.3, i * 0.3 + 0.2, 0.9)
                  for i in range(4))
    event = TranscriptEvent(Hypothesis(words, False), 1.0, 2.5,
                            speech_final=False, from_finalize=False)
    metadata = ResultsMetadata(request_id="request-id")
    for _ in chunks:
        results_message(event, metadata).to_json()


def best_us(run: Callable[[], None], chunks: int, passes: int) -> float:
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return round(best / chunks * 1e6, 2)


def stage_costs(audio: bytes, passes: int = 5) -> dict[str, float]:
    whole = len(audio) // 3200 * 3200
    chunks = [audio[i : i + 3200] for i in range(0, whole, 3200)]
    frames = frames_of(chunks)
    stages: dict[str, Callable[[], None]] = {
        "decode": lambda: decode(chunks),
        "level_floor": lambda: level_floor(frames),
        "flatness_guard": lambda: flatness_guard(frames),
        "pcm16_for_webrtcvad": lambda: pcm16(frames),
        "webrtcvad": webrtcvad_alone(frames),
        "vad_gate": lambda: vad_gate(chunks),
        "session": lambda: session(chunks),
        "result_message": lambda: result_message(chunks),
    }
    return {f"stage_us_per_chunk_{name}": best_us(run, len(chunks), passes)
            for name, run in stages.items()}
