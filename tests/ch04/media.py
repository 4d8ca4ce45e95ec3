"""Containerized audio for the container tests, made with PyAV.

The committed fixtures hold Ogg/Opus as opusenc writes a file (pages of
one second) and FLAC as sox writes it. Clients streaming live send other
shapes: MediaRecorder's WebM, and Ogg flushed every few packets. These
are made here from the committed Ogg by copying its Opus packets into
another container, so the audio is bit for bit the fixture's.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import av.error
import numpy as np

from ch04_streaming.containers import DEMUXERS, Container
from tests.ch04.harness import audio_of

OPUS_FIXTURE = "quick_brown_fox_opus"
FLAC_FIXTURE = "quick_brown_fox_flac"


def fixture_bytes(fixture_id: str) -> bytes:
    return audio_of(fixture_id).read_bytes()


def remux(data: bytes, format_name: str,
          options: dict[str, str] | None = None) -> bytes:
    """The same packets in another container (no re-encoding)."""
    out = io.BytesIO()
    with av.open(io.BytesIO(data), "r") as source, av.open(
        out, "w", format=format_name, options=options or {}
    ) as target:
        audio = source.streams.audio[0]
        stream = target.add_stream_from_template(audio)
        for packet in source.demux(audio):
            if packet.dts is None:
                continue  # the flush packet at the end
            packet.stream = stream
            target.mux(packet)
    return out.getvalue()


def webm_opus() -> bytes:
    """The fixture as MediaRecorder sends it: WebM for a live stream
    (no sizes known ahead, no index at the end)."""
    return remux(fixture_bytes(OPUS_FIXTURE), "webm", {"live": "1"})


def live_ogg_opus(page_ms: int = 20) -> bytes:
    """The fixture as a live encoder flushes it: a page every
    `page_ms` rather than opusenc's one a second."""
    return remux(fixture_bytes(OPUS_FIXTURE), "ogg",
                 {"page_duration": str(page_ms * 1000)})


def video_only_webm() -> bytes:
    """A WebM with one VP8 track and no audio."""
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as target:
        video = target.add_stream("libvpx", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(
                np.full((64, 64, 3), 25 * index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 10)
            for packet in video.encode(frame):
                target.mux(packet)
        for packet in video.encode(None):
            target.mux(packet)
    return out.getvalue()


def stereo_flac(left: np.ndarray, right: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="flac") as target:
        stream = target.add_stream("flac", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(
            np.stack([left, right]).astype(np.float32), format="fltp",
            layout="stereo")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            target.mux(packet)
    return out.getvalue()


def decodable_s(prefix: bytes, container: Container) -> float:
    """Seconds of audio a decoder gets from `prefix` when told that is
    all there is: what those bytes hold, as the container frames it."""
    try:
        with av.open(io.BytesIO(prefix), "r",
                     format=DEMUXERS[container]) as media:
            stream = media.streams.audio[0]
            return sum(f.samples for f in media.decode(stream)) / stream.rate
    except (av.error.FFmpegError, EOFError):
        return 0.0  # not even the headers yet


def slices(data: bytes, seconds: float, slice_ms: int) -> list[bytes]:
    """`data`, which holds `seconds` of audio, cut into slices of about
    `slice_ms` of it each."""
    step = max(1, round(len(data) * slice_ms / 1000 / seconds))
    return [data[i : i + step] for i in range(0, len(data), step)]
