"""Audio fundamentals: from client bytes to the model's 16 kHz samples.

Chapter 4, "Audio fundamentals for serving engineers". Clients send
16-bit PCM, 8 kHz mu-law from telephony, or 32-bit float (Deepgram's
`linear32`), at 8 to 48 kHz, mono or with channels interleaved sample
frame by sample frame; the model wants one format. Each stream gets an
`AudioDecoder` that turns its frames into float32 samples at 16 kHz,
mixing interleaved channels down to one, keeping resampler state across
frames so chunk edges leave no artefacts, and a `Framer` that cuts
those samples into the 10, 20 or 30 ms frames a VAD expects. A stream
whose channels are transcribed one by one (`channels.py`) measures its
frames by their `InterleavedFormat`.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import soundfile as sf
import soxr

MODEL_RATE = 16_000
SUPPORTED_RATES = (8_000, 16_000, 24_000, 48_000)
VAD_FRAME_MS = (10, 20, 30)


class Encoding(StrEnum):
    LINEAR16 = "linear16"  # signed 16-bit little-endian PCM
    MULAW = "mulaw"  # G.711 mu-law, 8 bits a sample
    # IEEE float, little-endian, -1.0 to 1.0: Deepgram's `linear32`
    FLOAT32 = "float32"


BYTES_PER_SAMPLE = {Encoding.LINEAR16: 2, Encoding.MULAW: 1,
                    Encoding.FLOAT32: 4}


class AudioFormatError(ValueError):
    """A frame cannot be audio in the declared format."""


def _mulaw_table() -> np.ndarray:
    """All 256 mu-law codes decoded once, by libsndfile's G.711 codec."""
    table, _ = sf.read(io.BytesIO(bytes(range(256))), format="RAW",
                       subtype="ULAW", samplerate=8_000, channels=1,
                       dtype="float32")
    return np.asarray(table, dtype=np.float32)


MULAW_TABLE = _mulaw_table()


def decode_samples(payload: bytes, encoding: Encoding) -> np.ndarray:
    """Bytes of one frame -> float32 samples in -1.0 to 1.0."""
    width = BYTES_PER_SAMPLE[encoding]
    if len(payload) % width:
        raise AudioFormatError(
            f"{encoding} frame of {len(payload)} bytes is not a whole"
            f" number of {width}-byte samples"
        )
    if encoding is Encoding.LINEAR16:
        pcm = np.frombuffer(payload, dtype="<i2")
        return pcm.astype(np.float32) / 32768.0
    if encoding is Encoding.MULAW:
        codes = np.frombuffer(payload, dtype=np.uint8)
        decoded: np.ndarray = MULAW_TABLE[codes]
        return decoded
    samples = np.frombuffer(payload, dtype="<f4")
    if not np.isfinite(samples).all():
        raise AudioFormatError("float32 frame holds NaN or infinity")
    return samples.astype(np.float32)


def sample_frames(payload: bytes, encoding: Encoding,
                  channels: int = 1) -> int:
    """How many sample frames (one sample of every channel) a payload
    holds; a payload that ends inside one is refused."""
    width = BYTES_PER_SAMPLE[encoding]
    if len(payload) % (width * channels) == 0:
        return len(payload) // (width * channels)
    if channels == 1:
        raise AudioFormatError(
            f"{encoding} frame of {len(payload)} bytes is not a whole"
            f" number of {width}-byte samples")
    raise AudioFormatError(
        f"{encoding} frame of {len(payload)} bytes is not a whole number"
        f" of {width * channels}-byte sample frames ({channels} channels"
        f" of {width} bytes)")


def mix_down(samples: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved samples of `channels` channels -> their mean: mono."""
    if channels == 1:
        return samples
    mixed: np.ndarray = samples.reshape(-1, channels).mean(
        axis=1, dtype=np.float32)
    return mixed


def to_pcm16(samples: np.ndarray) -> bytes:
    clipped = np.clip(samples, -1.0, 32767 / 32768)
    pcm: bytes = (clipped * 32768.0).astype("<i2").tobytes()
    return pcm


# --8<-- [start:audio_decoder]
@dataclass
class AudioDecoder:
    """One stream's frames -> float32 samples at the model's 16 kHz."""

    encoding: Encoding
    sample_rate: int
    channels: int = 1  # interleaved in each frame, mixed down to one
    received_samples: int = 0  # sample frames: billing, metadata
    _resampler: soxr.ResampleStream | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.sample_rate not in SUPPORTED_RATES:
            raise AudioFormatError(
                f"sample rate {self.sample_rate} Hz is not supported;"
                f" use one of {', '.join(map(str, SUPPORTED_RATES))}")
        if self.sample_rate != MODEL_RATE:
            # Resampler state spans frames: a fresh one per frame would
            # click at every frame edge.
            self._resampler = soxr.ResampleStream(
                self.sample_rate, MODEL_RATE, 1, dtype="float32")

    def decode(self, payload: bytes) -> np.ndarray:
        frames = sample_frames(payload, self.encoding, self.channels)
        samples = mix_down(decode_samples(payload, self.encoding),
                           self.channels)
        self.received_samples += frames
        if self._resampler is None:
            return samples
        resampled: np.ndarray = self._resampler.resample_chunk(samples)
        return resampled
# --8<-- [end:audio_decoder]

    @property
    def received_s(self) -> float:
        return self.received_samples / self.sample_rate

    def duration_of(self, payload: bytes) -> float:
        """Seconds of audio a frame holds, known before decoding it."""
        frames = sample_frames(payload, self.encoding, self.channels)
        return frames / self.sample_rate

    def flush(self) -> np.ndarray:
        """The samples the resampler still holds; it starts afresh."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        tail: np.ndarray = self._resampler.resample_chunk(
            np.zeros(0, dtype=np.float32), last=True
        )
        self._resampler = soxr.ResampleStream(
            self.sample_rate, MODEL_RATE, 1, dtype="float32"
        )
        return tail


@dataclass(frozen=True)
class InterleavedFormat:
    """What a stream's frames hold: `channels` interleaved samples of
    `encoding` per sample frame, `sample_rate` sample frames a second."""

    encoding: Encoding
    sample_rate: int
    channels: int

    @property
    def sample_bytes(self) -> int:
        return BYTES_PER_SAMPLE[self.encoding]

    def duration_of(self, payload: bytes) -> float:
        """Seconds of audio a frame holds: of the stream, not summed
        over its channels."""
        frames = sample_frames(payload, self.encoding, self.channels)
        return frames / self.sample_rate


@dataclass
class Framer:
    """Cuts a sample stream into fixed frames, keeping the remainder."""

    frame_ms: int = 20
    rate: int = MODEL_RATE
    _pending: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.float32), init=False
    )

    def __post_init__(self) -> None:
        if self.frame_ms not in VAD_FRAME_MS:
            raise ValueError(f"VAD frames are 10, 20 or 30 ms, not"
                             f" {self.frame_ms}")

    @property
    def frame_samples(self) -> int:
        return self.rate * self.frame_ms // 1000

    def frames(self, samples: np.ndarray) -> np.ndarray:
        """Whole frames as the rows of a (frames, samples) array."""
        pending = np.concatenate([self._pending, samples])
        size = self.frame_samples
        whole = pending.size // size * size
        self._pending = pending[whole:]
        return pending[:whole].reshape(-1, size)


@dataclass(frozen=True)
class WavFormat:
    """What a WAV header declares, and how long the header is."""

    encoding: Encoding | None  # None: a format this service cannot take
    sample_rate: int
    channels: int
    header_bytes: int
    tag: int = 1  # the format tag: 1 integer PCM, 3 IEEE float, 7 mu-law
    bits: int = 16

    @property
    def described(self) -> str:
        """What the header declares, in the words of the refusal."""
        if self.encoding is not None:
            return str(self.encoding)
        kind = WAV_TAG_NAMES.get(self.tag, f"format {self.tag}")
        return f"{self.bits}-bit {kind}"


WAV_FORMAT_TAGS = {(1, 16): Encoding.LINEAR16, (7, 8): Encoding.MULAW,
                   (3, 32): Encoding.FLOAT32}
WAV_TAG_NAMES = {1: "integer PCM", 3: "IEEE float", 6: "A-law",
                 7: "mu-law"}


def sniff_container(frame: bytes) -> str | None:
    """Name the container a first frame starts with, if any."""
    if frame[:4] == b"RIFF" and frame[8:12] == b"WAVE":
        return "wav"
    if frame[:4] == b"OggS":
        return "ogg"
    if frame[:4] == b"fLaC":
        return "flac"
    if frame[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM, Matroska
        return "webm"
    return None


def parse_wav_header(frame: bytes) -> WavFormat:
    """The `fmt ` chunk of a WAV file's first frame, up to `data`."""
    position = 12
    fmt: tuple[int, int, int, int] | None = None
    while position + 8 <= len(frame):
        chunk_id = frame[position : position + 4]
        size = int.from_bytes(frame[position + 4 : position + 8], "little")
        body = frame[position + 8 : position + 8 + size]
        if chunk_id == b"fmt " and len(body) >= 16:
            tag, channels, rate, _, _, bits = struct.unpack(
                "<HHIIHH", body[:16]
            )
            fmt = (tag, channels, rate, bits)
        if chunk_id == b"data":
            if fmt is None:
                break
            tag, channels, rate, bits = fmt
            return WavFormat(WAV_FORMAT_TAGS.get((tag, bits)), rate,
                             channels, position + 8, tag, bits)
        position += 8 + size + (size & 1)
    raise AudioFormatError("WAV header is incomplete or has no fmt chunk")


CHANNEL_NAMES = {1: "mono", 2: "stereo"}


def strip_declared_header(frame: bytes, encoding: Encoding,
                          sample_rate: int, channels: int = 1) -> bytes:
    """A first frame may start with a WAV header (file clients send
    one): accept it if it matches what the request declared, channels
    included, refuse any other container or format with the reason."""
    container = sniff_container(frame)
    if container is None:
        return frame
    if container != "wav":
        raise AudioFormatError(
            f"{container} container, but raw {encoding} was declared")
    wav = parse_wav_header(frame)
    declared = (encoding, sample_rate, channels)
    if (wav.encoding, wav.sample_rate, wav.channels) != declared:
        layout = CHANNEL_NAMES.get(channels, f"{channels} channels")
        raise AudioFormatError(
            f"declared {encoding} {sample_rate} Hz {layout}, but the WAV"
            f" holds {wav.described} {wav.sample_rate} Hz"
            f" with {wav.channels} channel(s)")
    return frame[wav.header_bytes:]
