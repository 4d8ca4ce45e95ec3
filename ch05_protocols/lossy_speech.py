"""The lossy-link lab's speech: the sample fixtures, back to back.

Chapter 5, "WebTransport: QUIC datagrams, head-of-line blocking". Every
transport of the lab streams the same audio: the speech fixtures (16
kHz linear16) one after another, resampled in one go to the rate the
transport sends, cut into 20 ms chunks. A chunk is timed if it lies
inside an utterance after its first word has ended: before that no
result has words to carry, on any transport.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from ch04_streaming.audio import to_pcm16
from ch04_streaming.client import load_audio
from ch04_streaming.settings import DEFAULT_MANIFEST, fixture_file

RATE = 16_000
CHUNK_S = 0.02
SPEECH_KINDS = ("utterance", "conversation")


@dataclass(frozen=True)
class Speech:
    chunks: list[bytes]  # 20 ms each
    timed: list[bool]  # inside an utterance, after its first word

    @property
    def audio_s(self) -> float:
        return len(self.chunks) * CHUNK_S


def chunk_bytes(rate: int = RATE) -> int:
    return round(CHUNK_S * rate) * 2  # linear16


def at_rate(pcm: bytes, rate: int) -> bytes:
    """16 kHz linear16 as linear16 at `rate`, resampled in one go."""
    if rate == RATE:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    return to_pcm16(soxr.resample(samples, RATE, rate))


def speech_fixtures(manifest: Path) -> list[dict[str, Any]]:
    return [entry for entry in json.loads(manifest.read_text())["fixtures"]
            if entry["kind"] in SPEECH_KINDS and entry["sample_rate"] == RATE
            and entry["encoding"] == "linear16"]


def speech_s(manifest: Path = DEFAULT_MANIFEST) -> float:
    """How much speech the fixtures hold, back to back."""
    return sum(float(entry["duration_s"])
               for entry in speech_fixtures(manifest))


def speech(seconds: float, rate: int = RATE,
           manifest: Path = DEFAULT_MANIFEST) -> Speech:
    """The first `seconds` of the speech fixtures, one after another,
    in 20 ms chunks at `rate`; a chunk is timed if it lies inside an
    utterance after its first word has ended (before it no result has
    words)."""
    audio, spans = b"", list[tuple[float, float]]()
    for entry in speech_fixtures(manifest):
        offset = len(audio) / 2 / RATE
        spans += [(offset + u["words"][0]["end"], offset + u["end"])
                  for u in entry["utterances"]]
        audio += load_audio(fixture_file(manifest, entry["path"])).payload
    audio, size = at_rate(audio, rate), chunk_bytes(rate)
    count = min(round(seconds / CHUNK_S), len(audio) // size)
    chunks = [audio[i * size:(i + 1) * size] for i in range(count)]
    timed = [any(s <= i * CHUNK_S and (i + 1) * CHUNK_S <= e
                 for s, e in spans) for i in range(count)]
    return Speech(chunks, timed)
