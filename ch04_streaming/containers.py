"""Containerized audio on a live stream: Ogg/Opus, WebM/Opus and FLAC.

Chapter 4, "Audio fundamentals for serving engineers". A browser's
MediaRecorder sends WebM/Opus, and other clients send Ogg/Opus or FLAC:
compressed audio in a container whose header says its rate and
channels. Each such stream gets a `ContainerDecoder`: FFmpeg (through
PyAV) demuxes and decodes in a worker thread of the stream's own, which
pulls the compressed bytes from a `BytePipe` as the WebSocket delivers
them, so audio comes out as soon as the container lets it, not at the
end of the stream. The output is float32 at the model's 16 kHz, mixed
down to mono, which the session's `AudioDecoder` takes as it is. Every
buffer is capped, and bytes that are not audio in the container the
stream opened are an `AudioFormatError` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import av
import av.error
import numpy as np

from ch04_streaming.audio import (
    MODEL_RATE,
    AudioDecoder,
    AudioFormatError,
    Encoding,
    sniff_container,
)
from ch04_streaming.byte_pipe import BytePipe, PipeFullError

log = logging.getLogger("ch04_streaming")


class Container(StrEnum):
    OGG = "ogg"
    WEBM = "webm"
    FLAC = "flac"


# FFmpeg's demuxer for each container, named rather than probed: a probe
# would wait for kilobytes before it guessed.
DEMUXERS = {Container.OGG: "ogg", Container.WEBM: "matroska",
            Container.FLAC: "flac"}
# Probe no further than the first packet, and decode only these codecs,
# also while FFmpeg probes: a video track is never decoded.
AUDIO_CODECS = ("opus", "flac")
OPEN_OPTIONS = {"probesize": "32", "analyzeduration": "100000",
                "codec_whitelist": ",".join(AUDIO_CODECS)}
# Channels mixed down are averaged (FFmpeg's own mix-down would add
# each side at -3 dB, making a browser's duplicated mono 3 dB louder).
MIXDOWN = {"rematrix_maxval": "1.0"}
MAGIC_BYTES = 4  # the bytes that tell a container from raw audio
MAX_CHANNELS = 8
# A jump this large in the container's timestamps is lost audio.
MAX_GAP_S = 0.1


@dataclass(frozen=True)
class ContainerLimits:
    max_waiting_bytes: int = 512 * 1024  # compressed, not yet demuxed
    max_output_s: float = 10.0  # decoded audio one frame may yield
    # Bytes read with no audio packet in them: garbage, a stream with
    # no audio, or metadata larger than any sane header.
    max_skipped_bytes: int = 256 * 1024
    decode_timeout_s: float = 5.0  # to decode one frame, or the tail


def opened_container(first: bytes, allowed: frozenset[Container],
                     required: bool) -> Container | None:
    """The container a stream's first bytes open, if it is one of
    `allowed`; None: raw audio (refused when a container is
    `required`)."""
    found = sniff_container(first)
    if found in allowed:
        return Container(found)
    if required:
        expected = " or ".join(sorted(allowed))
        raise AudioFormatError(f"expected {expected} data, but the stream"
                               f" starts as {found or 'raw audio'}")
    return None


def pcm_decoder() -> AudioDecoder:
    """How a session reads a `ContainerDecoder`'s output."""
    return AudioDecoder(Encoding.FLOAT32, MODEL_RATE)


class NotAudioError(ValueError):
    """The container's bytes are not audio this decoder takes."""


@dataclass
class SkipBudget:
    """The demuxer's input: the pipe, and a bound on how far it may
    read past the last audio packet. FFmpeg's demuxers skip garbage
    silently, so without one a stream of garbage would be read for
    ever; past the bound, the demuxer sees the end of its input."""

    pipe: BytePipe
    budget: int
    audio_until: int = 0  # bytes read up to the last audio packet
    overrun: NotAudioError | None = field(default=None, init=False)

    def read(self, size: int) -> bytes:
        skipped = self.pipe.delivered - self.audio_until
        if skipped > self.budget:
            self.overrun = NotAudioError(
                f"{skipped} bytes of the stream held no audio packet:"
                " garbage, or no audio track")
            return b""
        return self.pipe.read(size)


class ContainerDecoder:
    """One stream's container bytes in, float32 PCM at 16 kHz out."""

    def __init__(self, container: Container,
                 limits: ContainerLimits | None = None,
                 out_channels: int = 1) -> None:
        self.container = container
        self.limits = limits or ContainerLimits()
        self.out_channels = out_channels  # > 1: interleaved samples
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._pipe = BytePipe(self.limits.max_waiting_bytes, self._signal)
        self._source = SkipBudget(self._pipe, self.limits.max_skipped_bytes)
        self._lock = threading.Lock()  # guards the output and the error
        self._pcm: list[np.ndarray] = []
        self._pcm_samples = 0
        self._error: Exception | None = None
        self._next_pts_s: float | None = None  # where the audio reached
        self.done = threading.Event()
        self.worker = threading.Thread(
            target=self._work, name=f"{container}-decoder", daemon=True)
        self.worker.start()

    # --8<-- [start:container_decoder]
    async def decode(self, chunk: bytes) -> bytes:
        """Feed one frame of the container; return the PCM it let out."""
        try:
            self._pipe.write(chunk)
        except PipeFullError as error:
            raise AudioFormatError(f"{self.container}: {error}") from None
        # The worker has used every byte once it waits for more.
        await self._settled(lambda: self._pipe.starved)
        return self._take()

    def _demux(self) -> None:  # in the worker thread
        with av.open(self._source, "r", format=DEMUXERS[self.container],
                     options=OPEN_OPTIONS) as media:
            stream = self._audio_stream(media)
            # FFmpeg's default layout of N channels: 1c is mono.
            mix = av.AudioResampler(format="flt", rate=MODEL_RATE,
                                    layout=f"{self.out_channels}c",
                                    options=MIXDOWN)
            # Blocks in the source's `read` until the loop writes more.
            for packet in media.demux(stream):
                self._follow(packet)
                for frame in packet.decode():
                    self._emit(mix.resample(frame))
            self._emit(mix.resample(None))  # the resampler's tail
    # --8<-- [end:container_decoder]

    async def finish(self) -> bytes:
        """The end of input: the decoder's tail (its last samples)."""
        self._pipe.close()
        await self._settled(self.done.is_set)
        return self._take()

    async def aclose(self) -> None:
        """Stop the worker, whatever it was doing, and wait for it."""
        self._pipe.abort()
        with contextlib.suppress(AudioFormatError):
            await self._settled(self.done.is_set)
        if self.done.is_set():  # all it has left to do is return
            self.worker.join(timeout=1.0)
        else:  # stuck inside FFmpeg: a daemon thread, left behind
            log.warning("event=decoder_stuck container=%s", self.container)

    def _work(self) -> None:  # the worker thread
        error: Exception | None = None
        try:
            self._demux()
        except Exception as failure:  # reported by the next decode
            error = failure
        finally:
            with self._lock:
                self._error = self._source.overrun or error
            self.done.set()
            self._signal()

    def _audio_stream(self, media: av.container.InputContainer
                      ) -> av.AudioStream:
        if not media.streams.audio:
            raise NotAudioError(
                f"the {self.container} container holds no audio stream")
        stream = media.streams.audio[0]
        codec = stream.codec_context
        if codec.name not in AUDIO_CODECS:
            raise NotAudioError(
                f"the {self.container} container holds {codec.name} audio;"
                f" {' or '.join(AUDIO_CODECS)} is taken")
        if codec.channels > MAX_CHANNELS:
            raise NotAudioError(
                f"{codec.channels} channels; at most {MAX_CHANNELS}")
        codec.thread_count = 1  # the worker is the stream's one thread
        return stream

    def _follow(self, packet: av.Packet[av.AudioStream]) -> None:
        """Note where the audio reached: in bytes, for the skip budget,
        and in time, where a jump means a page was damaged or lost."""
        self._source.audio_until = self._pipe.delivered
        if packet.pts is None or packet.time_base is None:
            return  # the empty packet that flushes the decoder
        start = float(packet.pts * packet.time_base)
        expected = self._next_pts_s
        if expected is not None and start - expected > MAX_GAP_S:
            raise NotAudioError(
                f"the {self.container} stream skips"
                f" {start - expected:.2f} s of audio at {expected:.2f} s:"
                " a damaged or lost page")
        length = packet.duration or 0
        self._next_pts_s = start + float(length * packet.time_base)

    def _emit(self, frames: Iterable[av.AudioFrame]) -> None:
        cap = round(self.limits.max_output_s * MODEL_RATE) * self.out_channels
        with self._lock:
            for frame in frames:
                samples = frame.to_ndarray().reshape(-1)
                self._pcm.append(samples)
                self._pcm_samples += samples.size
            if self._pcm_samples > cap:
                raise NotAudioError(
                    "one frame decodes to more than"
                    f" {self.limits.max_output_s:g} s of audio")

    def _take(self) -> bytes:
        with self._lock:
            error, pcm = self._error, self._pcm
            self._pcm, self._pcm_samples = [], 0
        if error is not None:
            raise AudioFormatError(self._reason(error))
        return b"".join(samples.astype("<f4").tobytes() for samples in pcm)

    def _reason(self, error: Exception) -> str:
        if isinstance(error, NotAudioError):
            return str(error)
        if isinstance(error, EOFError):
            return f"the {self.container} stream ended before any audio"
        if isinstance(error, av.error.FFmpegError):
            return (f"the {self.container} stream is not valid:"
                    f" {error.strerror}")
        return f"the {self.container} stream cannot be decoded: {error}"

    async def _settled(self, idle: Callable[[], bool]) -> None:
        """Wait until the worker is idle or done, for a bounded time."""
        try:
            async with asyncio.timeout(self.limits.decode_timeout_s):
                while True:
                    self._changed.clear()
                    if self.done.is_set() or idle():
                        return
                    await self._changed.wait()
        except TimeoutError:
            self._pipe.abort()
            raise AudioFormatError(
                f"decoding {self.container} took over"
                f" {self.limits.decode_timeout_s:g} s") from None

    def _signal(self) -> None:
        """From the worker: something changed that `decode` waits for."""
        with contextlib.suppress(RuntimeError):  # the loop has closed
            self._loop.call_soon_threadsafe(self._changed.set)
