"""A streaming client for both dialects, with latency measurement.

Chapter 4, "Chunk size selection". It sends audio in fixed chunks, at
real-time pace or as fast as the server takes it, remembers when each
chunk left, and stamps every result with the delay from the moment the
audio it covers was sent. `examples.stream_file` and the chunk-size
experiment are built on it.
"""

from __future__ import annotations

import asyncio
import bisect
import io
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

import numpy as np
import soundfile as sf
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ch04_streaming.audio import SUPPORTED_RATES


@dataclass(frozen=True)
class ClientAudio:
    """Audio as it goes on the wire: raw bytes and what they are."""

    payload: bytes
    encoding: str  # linear16 or mulaw
    sample_rate: int

    @property
    def bytes_per_second(self) -> int:
        width = 2 if self.encoding == "linear16" else 1
        return self.sample_rate * width


def load_audio(path: Path) -> ClientAudio:
    """Read any fixture as a client would send it: mu-law stays mu-law,
    everything else becomes 16-bit PCM at the file's own rate."""
    info = sf.info(str(path))
    if info.channels != 1 or info.samplerate not in SUPPORTED_RATES:
        raise ValueError(f"{path}: need mono audio at one of"
                         f" {SUPPORTED_RATES} Hz")
    if info.format == "WAV" and info.subtype == "ULAW":
        data = sf.read(str(path), dtype="int16")[0]
        raw = io.BytesIO()
        sf.write(raw, data, info.samplerate, format="RAW", subtype="ULAW")
        return ClientAudio(raw.getvalue(), "mulaw", info.samplerate)
    pcm = np.asarray(sf.read(str(path), dtype="int16")[0], dtype="<i2")
    return ClientAudio(pcm.tobytes(), "linear16", info.samplerate)


@dataclass(frozen=True)
class Heard:
    """One transcript message, as the dialect reports it."""

    text: str
    is_final: bool
    first_word_s: float | None  # stream time the first word starts
    last_word_s: float | None  # and the last one ends
    segment: float  # which utterance: its start, or its turn number


@dataclass(frozen=True)
class Result:
    text: str
    is_final: bool
    # From sending the audio of the last word heard to receiving this:
    # for a final, the delay a listener perceives after speech ends.
    latency_s: float


@dataclass(frozen=True)
class HeardUtterance:
    """One final and its timings: the per-utterance record of an SLI."""

    text: str
    first_word_s: float  # stream time
    last_word_s: float
    first_result_s: float | None  # first word sent -> first result in
    final_latency_s: float  # last word sent -> final in
    processing_s: float  # first word sent -> final in

    @property
    def audio_s(self) -> float:
        return self.last_word_s - self.first_word_s


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    utterances: list[HeardUtterance] = field(default_factory=list)
    chunks_sent: int = 0
    messages_received: int = 0
    first_result_s: float | None = None  # from the first word's audio
    close_code: int | None = None
    close_reason: str = ""
    closing_message: Mapping[str, object] | None = None

    @property
    def finals(self) -> list[Result]:
        return [r for r in self.results if r.is_final and r.text]

    @property
    def transcript(self) -> str:
        return " ".join(r.text for r in self.finals)


class ClientDialect(Protocol):
    path: str
    close_message: str
    min_chunk_ms: int  # the server refuses shorter frames

    def query(self, audio: ClientAudio) -> dict[str, str]: ...

    def headers(self, key: str) -> dict[str, str]: ...

    def heard(self, message: Mapping[str, object]) -> Heard | None: ...


def word_span(starts: list[float], ends: list[float]
              ) -> tuple[float | None, float | None]:
    return (starts[0] if starts else None, ends[-1] if ends else None)


class DeepgramClient:
    path = "/v1/listen"
    close_message = json.dumps({"type": "CloseStream"})
    min_chunk_ms = 0

    def __init__(self, **options: str) -> None:
        self.options = options  # more query, e.g. diarize="true"

    def query(self, audio: ClientAudio) -> dict[str, str]:
        return {"encoding": audio.encoding,
                "sample_rate": str(audio.sample_rate), "channels": "1",
                "interim_results": "true", "model": "mock", **self.options}

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Token {key}"}

    def heard(self, message: Mapping[str, object]) -> Heard | None:
        if message.get("type") != "Results":
            return None
        channel = message["channel"]
        assert isinstance(channel, dict)
        best = channel["alternatives"][0]
        first, last = word_span([w["start"] for w in best["words"]],
                                [w["end"] for w in best["words"]])
        start = message["start"]
        assert isinstance(start, float | int)
        return Heard(str(best["transcript"]), bool(message["is_final"]),
                     first, last, float(start))


class AssemblyAIClient:
    path = "/v3/ws"
    close_message = json.dumps({"type": "Terminate"})
    min_chunk_ms = 50

    def query(self, audio: ClientAudio) -> dict[str, str]:
        names = {"linear16": "pcm_s16le", "mulaw": "pcm_mulaw"}
        return {"encoding": names[audio.encoding],
                "sample_rate": str(audio.sample_rate)}

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": key}

    def heard(self, message: Mapping[str, object]) -> Heard | None:
        if message.get("type") != "Turn" or message.get("turn_is_formatted"):
            return None
        words = message["words"]
        assert isinstance(words, list)
        first, last = word_span([w["start"] / 1000 for w in words],
                                [w["end"] / 1000 for w in words])
        text = " ".join(str(w["text"]) for w in words)
        turn = message["turn_order"]
        assert isinstance(turn, int)
        return Heard(text, bool(message["end_of_turn"]), first, last,
                     float(turn))


DIALECTS: dict[str, ClientDialect] = {
    "deepgram": DeepgramClient(), "assemblyai": AssemblyAIClient(),
}


@dataclass
class SendLog:
    """When each chunk left, to date the results that cover it."""

    audio_ends: list[float] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)

    def record(self, audio_end_s: float, at: float) -> None:
        self.audio_ends.append(audio_end_s)
        self.sent_at.append(at)

    def sent_time_of(self, audio_s: float) -> float:
        i = bisect.bisect_left(self.audio_ends, audio_s - 1e-6)
        return self.sent_at[min(i, len(self.sent_at) - 1)]


def chunk_bounds(total: int, chunk: int, shortest: int
                 ) -> list[tuple[int, int]]:
    """Byte ranges of `chunk` bytes; a last one shorter than `shortest`
    joins the one before it, as a server with a minimum asks."""
    bounds = [(i, min(i + chunk, total)) for i in range(0, total, chunk)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < shortest:
        bounds[-2:] = [(bounds[-2][0], total)]
    return bounds


async def stream(
    url: str, dialect: ClientDialect, key: str, audio: ClientAudio,
    chunk_ms: int = 100, realtime: bool = False,
    on_result: Callable[[Result], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Report:
    """Send `audio` in `chunk_ms` chunks; collect results until close."""
    report, sent = Report(), SendLog()
    first_results: dict[float, float] = {}  # segment -> first latency
    chunk = audio.bytes_per_second * chunk_ms // 1000
    chunk -= chunk % (2 if audio.encoding == "linear16" else 1)
    target = f"{url}{dialect.path}?{urlencode(dialect.query(audio))}"
    async with connect(target, additional_headers=dialect.headers(key),
                       max_size=2**22) as socket:

        async def send() -> None:
            start = clock()
            shortest = audio.bytes_per_second * dialect.min_chunk_ms // 1000
            for offset, end in chunk_bounds(len(audio.payload), chunk,
                                            shortest):
                end_s = end / audio.bytes_per_second
                if realtime:  # a microphone has a chunk once it is over
                    await asyncio.sleep(max(0.0, start + end_s - clock()))
                await socket.send(audio.payload[offset:end])
                sent.record(end_s, clock())
                report.chunks_sent += 1
            await socket.send(dialect.close_message)

        sender = asyncio.create_task(send())
        try:
            async for raw in socket:
                message = json.loads(raw)
                report.messages_received += 1
                heard = dialect.heard(message)
                if heard is None:
                    if message.get("type") in ("Metadata", "Termination"):
                        report.closing_message = message
                    continue
                now = clock()
                first, last = heard.first_word_s, heard.last_word_s
                latency = now - sent.sent_time_of(last) if last else 0.0
                result = Result(heard.text, heard.is_final, latency)
                if first is not None and heard.segment not in first_results:
                    # Time to first result: from speech onset on the wire.
                    first_results[heard.segment] = (
                        now - sent.sent_time_of(first))
                    if report.first_result_s is None:
                        report.first_result_s = first_results[heard.segment]
                if heard.is_final and first is not None and last is not None:
                    report.utterances.append(HeardUtterance(
                        heard.text, first, last,
                        first_results.pop(heard.segment, None), latency,
                        now - sent.sent_time_of(first)))
                report.results.append(result)
                if on_result is not None:
                    on_result(result)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        report.close_code = socket.close_code
        report.close_reason = socket.close_reason or ""
    return report
