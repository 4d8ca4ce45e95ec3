"""One stream of speech at the pace of speech, timed chunk by chunk.

Chapter 5, "WebTransport: QUIC datagrams, head-of-line blocking". What
every transport of the lossy-link lab shares: the speech (the sample
fixtures back to back, 16 kHz linear16, in 20 ms chunks, those inside
utterances marked to be timed), what a transport is (`Transport`: start
its server, open a `Stream`), and the driver that sends one chunk every
20 ms by the clock, noting when each was sent, while a reader notes
when each result arrived and how much audio it covers. The result is a
`Trace`; the lab's statistics read latency and audio lost from it, the
same way for every transport.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soxr

from ch04_streaming.audio import to_pcm16
from ch04_streaming.client import load_audio
from ch04_streaming.settings import DEFAULT_MANIFEST, fixture_file
from ch05_protocols.compare import ENGINE, KEY

RATE = 16_000
CHUNK_S = 0.02
SPEECH_KINDS = ("utterance", "conversation")
CONNECT_TIMEOUT_S = 30.0  # a lost SYN costs a second, or more


@dataclass(frozen=True)
class Speech:
    chunks: list[bytes]  # 20 ms each
    timed: list[bool]  # inside an utterance, after its first word

    @property
    def audio_s(self) -> float:
        return len(self.chunks) * CHUNK_S


def service_env() -> dict[str, str]:
    """A service's key and engine (the mock at model time zero, as the
    transports compared elsewhere in the chapter), by variable."""
    return {"SPEECH_API_KEYS": KEY,
            **{f"CH04_{k.upper()}": v for k, v in ENGINE.items()}}


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


@dataclass(frozen=True)
class Covered:
    """A result: the recogniser has heard the stream up to `end_s`."""

    end_s: float


@dataclass(frozen=True)
class Received:
    """The server's report of the audio it received, in seconds."""

    audio_s: float


Event = Covered | Received


def deepgram_covered(message: Mapping[str, Any]) -> Covered | None:
    """A Deepgram `Results` with words (as the WebTransport and WebRTC
    services speak): it covers the stream to `start` + `duration`."""
    if message.get("type") != "Results":
        return None
    if not message["channel"]["alternatives"][0]["transcript"]:
        return None
    return Covered(round(message["start"] + message["duration"], 3))


class Stream(Protocol):
    """One client stream on one transport."""

    async def send(self, chunk: bytes) -> None: ...  # 20 ms of audio
    async def finish(self) -> None: ...  # no more audio
    def events(self) -> AsyncIterator[Event]: ...  # until the stream ends
    async def close(self) -> None: ...


class Transport(Protocol):
    """A transport of the lab: its server, and streams to it."""

    @property
    def name(self) -> str: ...
    @property
    def rate(self) -> int: ...  # of the linear16 audio its streams send

    def serve(self) -> AbstractAsyncContextManager[int]: ...  # its port
    async def connect(self, port: int) -> Stream: ...


@dataclass
class Trace:
    """When each chunk went out, and when each result came back."""

    sent_at: list[float] = field(default_factory=list)  # by chunk
    results: list[tuple[float, float]] = field(
        default_factory=list)  # (end_s, received at)
    received_s: float | None = None  # as the server reports it
    ended_at: float | None = None  # when the stream's last event came


async def read(stream: Stream, trace: Trace,
               clock: Callable[[], float]) -> None:
    async for event in stream.events():
        if isinstance(event, Covered):
            trace.results.append((event.end_s, clock()))
        else:
            trace.received_s = event.audio_s
    trace.ended_at = clock()


async def stream_speech(stream: Stream, chunks: Sequence[bytes],
                        drain_s: float = 15.0,
                        clock: Callable[[], float] = time.monotonic,
                        ) -> Trace:
    """Send `chunks` at the pace of speech, then read to the end."""
    trace = Trace()
    reader = asyncio.create_task(read(stream, trace, clock))
    try:
        start = clock()
        for index, chunk in enumerate(chunks):
            # Paced from the start, so a late send does not delay the
            # ones after it, as a microphone does not wait.
            await asyncio.sleep(max(0.0, start + index * CHUNK_S - clock()))
            trace.sent_at.append(clock())
            await stream.send(chunk)
        await stream.finish()
        try:
            async with asyncio.timeout(drain_s):
                await asyncio.shield(reader)
        except TimeoutError:
            raise TimeoutError(f"the stream did not end within {drain_s:g}"
                               " s of its last chunk") from None
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await stream.close()
    return trace
