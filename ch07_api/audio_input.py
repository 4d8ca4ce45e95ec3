"""An uploaded audio file, read once into the model's samples.

Chapter 7, "Error handling for ML-specific failures": bad audio is the
client's error, and the answer must say why. The file is decoded by
libsndfile (WAV, FLAC, Ogg Vorbis and Opus, MP3), mixed down to mono and
resampled to the model's 16 kHz with soxr. Anything the decoder cannot
read is a 400 carrying the decoder's own reason; audio longer than the
service's limit is refused from the header, before it is decoded. A
short WAV decodes in about a millisecond, less than a round trip to a
worker thread costs when the CPU is busy; anything else is decoded off
the event loop.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from ch04_streaming.audio import MODEL_RATE
from ch07_api.errors import PayloadTooLargeError, UnreadableAudioError

# About 16 s of 16 kHz 16-bit WAV, or 5 s at 48 kHz: 2 ms at most.
QUICK_WAV_BYTES = 512 * 1024


@dataclass(frozen=True)
class UploadedAudio:
    samples: np.ndarray  # float32, mono, MODEL_RATE
    source_rate: int
    channels: int
    format: str

    @property
    def duration_s(self) -> float:
        return self.samples.size / MODEL_RATE


def decodes_quickly(data: bytes) -> bool:
    """A WAV file small enough to decode on the event loop."""
    return (len(data) <= QUICK_WAV_BYTES and data[:4] == b"RIFF"
            and data[8:12] == b"WAVE")


async def decode_upload(data: bytes, max_audio_s: float,
                        param: str = "file") -> UploadedAudio:
    """`read_audio` for a route: a long or compressed file takes a
    while to decode, so off the event loop; a short WAV takes less
    than the trip there."""
    if decodes_quickly(data):
        return read_audio(data, max_audio_s, param)
    return await asyncio.to_thread(read_audio, data, max_audio_s, param)


def read_audio(data: bytes, max_audio_s: float,
               param: str = "file") -> UploadedAudio:
    """Decode a whole file; raise `UnreadableAudioError` with the
    decoder's reason, or `PayloadTooLargeError` if it is too long."""
    if not data:
        raise UnreadableAudioError("the audio file is empty", param)
    try:
        with sf.SoundFile(io.BytesIO(data)) as audio:
            if audio.frames / audio.samplerate > max_audio_s:
                raise PayloadTooLargeError(
                    f"{audio.frames / audio.samplerate:.1f} s of audio;"
                    f" at most {max_audio_s:g} s per request", param)
            samples = audio.read(dtype="float32", always_2d=True)
            rate, channels = audio.samplerate, audio.channels
            kind = audio.format
    except sf.LibsndfileError as error:
        raise UnreadableAudioError(
            "the file is not audio this service can decode:"
            f" {error.error_string}", param) from None
    mono = samples.mean(axis=1, dtype=np.float32)
    if rate != MODEL_RATE:
        mono = soxr.resample(mono, rate, MODEL_RATE).astype(np.float32)
    if not np.isfinite(mono).all():
        raise UnreadableAudioError("the audio holds NaN or infinity",
                                   param)
    return UploadedAudio(np.ascontiguousarray(mono), rate, channels,
                         kind.lower())
