"""A streaming client for both dialects, with latency measurement.

Chapter 4, "Chunk size selection". It sends audio in fixed chunks, at
real-time pace or as fast as the server takes it, and dates every result
by the client's audio clock. At real-time pace it behaves as a live
microphone: a chunk leaves only once it has been captured, and latency
runs from the moment the audio was spoken, so the time a chunk takes to
fill counts, as a listener feels it. Sent as fast as possible, audio has
no moment of speaking, and latency runs from when it was sent.
`examples.stream_file` and the chunk-size experiment are built on it.
"""

from __future__ import annotations

import asyncio
import bisect
import io
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

import numpy as np
import soundfile as sf
import soxr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ch04_streaming.audio import SUPPORTED_RATES, to_pcm16

SAMPLE_BYTES = {"linear16": 2, "linear32": 4, "mulaw": 1}


@dataclass(frozen=True)
class ClientAudio:
    """Audio as it goes on the wire: raw bytes and what they are."""

    payload: bytes
    encoding: str  # linear16, linear32 (32-bit float) or mulaw
    sample_rate: int

    @property
    def sample_bytes(self) -> int:
        return SAMPLE_BYTES[self.encoding]

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * self.sample_bytes


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


def load_pcm(path: Path, rate: int) -> bytes:
    """Any sound file as mono 16-bit PCM at `rate`, resampled with soxr
    if its own rate differs: what a client that must send one rate
    (OpenAI's 24 kHz) makes of a fixture."""
    samples, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if file_rate != rate:
        mono = soxr.resample(mono, file_rate, rate)
    return to_pcm16(mono)


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
    # From the audio of the last word heard (by the service's word times)
    # to receiving this: for a final, the delay a listener perceives
    # after speech ends. See `AudioClock` for when audio "is" at a time.
    latency_s: float


@dataclass(frozen=True)
class HeardUtterance:
    """One final and its timings: the per-utterance record of an SLI.

    The `_s` latencies use the service's own word times; the clock times
    `first_result_at` and `final_at` let a caller that knows the true
    word times (a fixture's manifest) date them from those instead.
    """

    text: str
    first_word_s: float  # stream time, as the service reports it
    last_word_s: float
    first_result_at: float | None  # client clock: first result in
    final_at: float  # client clock: final in
    first_result_s: float | None  # first word's audio -> first result
    final_latency_s: float  # last word's audio -> final
    processing_s: float  # first word's audio -> final
    # between consecutive results with words, interim or final
    result_gaps_s: tuple[float, ...] = ()

    @property
    def audio_s(self) -> float:
        return self.last_word_s - self.first_word_s


@dataclass
class AudioClock:
    """When each moment of the stream's audio existed on the client.

    Paced, as from a live microphone, stream time `t` was spoken at
    `origin + t`, `origin` being when capture began; a chunk leaves only
    once it is full, so a word that starts 10 ms into a 100 ms chunk
    waits 90 ms before it can leave, and that wait is latency the
    listener feels. Unpaced, a file sent as fast as the server takes it
    was never spoken at any moment: audio is dated by when the chunk
    holding it was sent.
    """

    paced: bool
    origin: float = 0.0  # client clock when capture began
    audio_ends: list[float] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)

    def record(self, audio_end_s: float, at: float) -> None:
        """The chunk ending at stream time `audio_end_s` left at `at`."""
        self.audio_ends.append(audio_end_s)
        self.sent_at.append(at)

    def time_of(self, audio_s: float) -> float:
        """Client clock time of stream time `audio_s`."""
        if self.paced:
            return self.origin + audio_s
        i = bisect.bisect_left(self.audio_ends, audio_s - 1e-6)
        return self.sent_at[min(i, len(self.sent_at) - 1)]


@dataclass
class Report:
    audio_clock: AudioClock = field(
        default_factory=lambda: AudioClock(paced=False))
    results: list[Result] = field(default_factory=list)
    utterances: list[HeardUtterance] = field(default_factory=list)
    chunks_sent: int = 0
    messages_received: int = 0
    # WebSocket message payloads, each way; frame headers are separate.
    bytes_sent: int = 0
    bytes_received: int = 0
    framing_sent: int = 0
    framing_received: int = 0
    # The stream's first result, from its first word's audio (by the
    # service's word time) as dated by `audio_clock`.
    first_result_s: float | None = None
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


def frame_header_bytes(payload: int, masked: bool) -> int:
    """Bytes a WebSocket frame adds to its payload (RFC 6455, 5.2): two,
    more for long payloads, and four of mask from a client."""
    extended = 0 if payload < 126 else 2 if payload < 65_536 else 8
    return 2 + extended + (4 if masked else 0)


def chunk_bounds(total: int, chunk: int, shortest: int
                 ) -> list[tuple[int, int]]:
    """Byte ranges of `chunk` bytes; a last one shorter than `shortest`
    joins the one before it, as a server with a minimum asks."""
    bounds = [(i, min(i + chunk, total)) for i in range(0, total, chunk)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < shortest:
        bounds[-2:] = [(bounds[-2][0], total)]
    return bounds


@dataclass
class ResultTimer:
    """Dates each message a stream receives by its audio clock, into
    `report`: what `stream` does with every message, kept apart for a
    caller that sends its audio its own way (chapter 6's load generator
    loops a fixture; a gRPC client hears the same results as `Heard`).
    """

    dialect: ClientDialect
    report: Report
    on_result: Callable[[Result], None] | None = None
    # segment -> client clock times of its results with words
    arrivals: dict[float, list[float]] = field(default_factory=dict)

    def message(self, raw: str | bytes, now: float) -> None:
        """One WebSocket message, received at `now`."""
        report = self.report
        size = len(raw.encode() if isinstance(raw, str) else raw)
        report.bytes_received += size
        report.framing_received += frame_header_bytes(size, masked=False)
        message = json.loads(raw)
        report.messages_received += 1
        heard = self.dialect.heard(message)
        if heard is None:
            if message.get("type") in ("Metadata", "Termination"):
                report.closing_message = message
            return
        self.heard(heard, now)

    def heard(self, heard: Heard, now: float) -> None:
        """One result, in any wire's terms, received at `now`."""
        report, audio_clock = self.report, self.report.audio_clock
        first, last = heard.first_word_s, heard.last_word_s
        latency = (now - audio_clock.time_of(last)
                   if last is not None else 0.0)
        result = Result(heard.text, heard.is_final, latency)
        if first is not None:
            if report.first_result_s is None:
                report.first_result_s = now - audio_clock.time_of(first)
            self.arrivals.setdefault(heard.segment, []).append(now)
        if heard.is_final and first is not None and last is not None:
            times = self.arrivals.pop(heard.segment, [now])
            first_at, spoken = times[0], audio_clock.time_of(first)
            report.utterances.append(HeardUtterance(
                heard.text, first, last, first_at, now, first_at - spoken,
                latency, now - spoken,
                tuple(b - a for a, b in itertools.pairwise(times))))
        report.results.append(result)
        if self.on_result is not None:
            self.on_result(result)


async def stream(
    url: str, dialect: ClientDialect, key: str, audio: ClientAudio,
    chunk_ms: int = 100, realtime: bool = False,
    on_result: Callable[[Result], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    frame_audio: Callable[[bytes], bytes | str] = bytes,
) -> Report:
    """Send `audio` in `chunk_ms` chunks; collect results until close.

    With `realtime`, chunks leave at the pace of speech and results are
    timed from when their audio was spoken; without, as fast as the
    server takes them, timed from when their audio was sent. Each chunk
    goes as a binary frame unless `frame_audio` wraps it otherwise (a
    base64 text frame, chapter 5).
    """
    report = Report(audio_clock=AudioClock(paced=realtime))
    audio_clock = report.audio_clock
    timer = ResultTimer(dialect, report, on_result)
    chunk = audio.bytes_per_second * chunk_ms // 1000
    chunk -= chunk % audio.sample_bytes
    target = f"{url}{dialect.path}?{urlencode(dialect.query(audio))}"
    async with connect(target, additional_headers=dialect.headers(key),
                       max_size=2**22) as socket:

        async def send(message: bytes | str) -> None:
            await socket.send(message)
            size = len(message.encode() if isinstance(message, str)
                       else message)
            report.bytes_sent += size
            report.framing_sent += frame_header_bytes(size, masked=True)

        async def capture_and_send() -> None:
            audio_clock.origin = clock()  # capture begins
            shortest = audio.bytes_per_second * dialect.min_chunk_ms // 1000
            for offset, end in chunk_bounds(len(audio.payload), chunk,
                                            shortest):
                end_s = end / audio.bytes_per_second
                if realtime:  # a microphone has a chunk once it is over
                    await sleep(
                        max(0.0, audio_clock.origin + end_s - clock()))
                await send(frame_audio(audio.payload[offset:end]))
                audio_clock.record(end_s, clock())
                report.chunks_sent += 1
            await send(dialect.close_message)

        sender = asyncio.create_task(capture_and_send())
        try:
            async for raw in socket:
                timer.message(raw, clock())
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        report.close_code = socket.close_code
        report.close_reason = socket.close_reason or ""
    return report
