"""Decoding, resampling, framing, and what a first frame may declare."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
import soundfile as sf

from ch04_streaming.audio import (
    AudioDecoder,
    AudioFormatError,
    Encoding,
    Framer,
    InterleavedFormat,
    decode_samples,
    parse_wav_header,
    sniff_container,
    strip_declared_header,
    to_pcm16,
)


def tone(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_linear16_round_trips() -> None:
    samples = tone(16_000, 0.1)
    decoded = decode_samples(to_pcm16(samples), Encoding.LINEAR16)
    assert np.max(np.abs(decoded - samples)) < 1 / 16_000


def test_mulaw_decodes_like_libsndfile() -> None:
    samples = tone(8_000, 0.1)
    raw = io.BytesIO()
    sf.write(raw, samples, 8_000, format="RAW", subtype="ULAW")
    decoded = decode_samples(raw.getvalue(), Encoding.MULAW)
    assert decoded.size == samples.size
    assert np.max(np.abs(decoded - samples)) < 0.02  # 8-bit companding


def test_float32_rejects_nan() -> None:
    payload = np.array([0.1, np.nan], dtype="<f4").tobytes()
    with pytest.raises(AudioFormatError, match="NaN"):
        decode_samples(payload, Encoding.FLOAT32)


@pytest.mark.parametrize(("encoding", "size"), [
    (Encoding.LINEAR16, 3201), (Encoding.FLOAT32, 6402),
])
def test_partial_samples_are_rejected(encoding: Encoding, size: int) -> None:
    with pytest.raises(AudioFormatError, match="not a whole number"):
        decode_samples(b"\0" * size, encoding)


@pytest.mark.parametrize("rate", [8_000, 24_000, 48_000])
def test_resampling_in_chunks_matches_one_pass(rate: int) -> None:
    samples = tone(rate, 1.0, hz=300)
    chunked = AudioDecoder(Encoding.LINEAR16, rate)
    pieces = [chunked.decode(to_pcm16(samples[i : i + rate // 10]))
              for i in range(0, samples.size, rate // 10)]
    out = np.concatenate([*pieces, chunked.flush()])
    assert out.size == 16_000
    whole = AudioDecoder(Encoding.LINEAR16, rate)
    reference = np.concatenate(
        [whole.decode(to_pcm16(samples)), whole.flush()]
    )
    assert np.max(np.abs(out - reference)) < 1e-4  # no edge artefacts
    assert chunked.received_s == pytest.approx(1.0)


def test_unsupported_rate_names_the_supported_ones() -> None:
    with pytest.raises(AudioFormatError, match="8000, 16000, 24000, 48000"):
        AudioDecoder(Encoding.LINEAR16, 44_100)


def test_framer_keeps_the_remainder() -> None:
    framer = Framer(frame_ms=20)
    assert framer.frames(np.zeros(300, dtype=np.float32)).shape == (0, 320)
    frames = framer.frames(np.zeros(700, dtype=np.float32))
    assert frames.shape == (3, 320)  # 1000 samples in
    assert len(framer.frames(np.zeros(279, dtype=np.float32))) == 0
    assert len(framer.frames(np.zeros(1, dtype=np.float32))) == 1
    with pytest.raises(ValueError, match="10, 20 or 30"):
        Framer(frame_ms=25)


def wav_bytes(rate: int, subtype: str) -> bytes:
    raw = io.BytesIO()
    sf.write(raw, tone(rate, 0.05), rate, format="WAV", subtype=subtype)
    return raw.getvalue()


def test_wav_header_is_read_up_to_the_data() -> None:
    header = parse_wav_header(wav_bytes(8_000, "ULAW"))
    assert (header.encoding, header.sample_rate, header.channels) == (
        Encoding.MULAW, 8_000, 1,
    )
    pcm = wav_bytes(16_000, "PCM_16")
    header = parse_wav_header(pcm)
    assert header.encoding is Encoding.LINEAR16
    assert len(pcm) - header.header_bytes == 2 * 800


def test_truncated_wav_header_is_an_error() -> None:
    with pytest.raises(AudioFormatError, match="incomplete"):
        parse_wav_header(wav_bytes(16_000, "PCM_16")[:20])


def test_containers_are_recognised_by_their_magic() -> None:
    assert sniff_container(wav_bytes(16_000, "PCM_16")) == "wav"
    assert sniff_container(b"OggS\0\0") == "ogg"
    assert sniff_container(b"fLaC\0\0") == "flac"
    assert sniff_container(b"\x1a\x45\xdf\xa3\0\0") == "webm"
    assert sniff_container(to_pcm16(tone(16_000, 0.01))) is None


def test_interleaved_channels_are_mixed_down_to_their_mean() -> None:
    left = tone(16_000, 0.1)
    stereo = np.stack([left, np.zeros_like(left)], axis=1).reshape(-1)
    decoder = AudioDecoder(Encoding.FLOAT32, 16_000, channels=2)
    payload = stereo.astype("<f4").tobytes()
    assert decoder.duration_of(payload) == 0.1
    mixed = decoder.decode(payload)
    np.testing.assert_allclose(mixed, left / 2, atol=1e-7)
    assert decoder.received_s == 0.1  # sample frames, not samples


@pytest.mark.parametrize("measure", [
    AudioDecoder(Encoding.LINEAR16, 16_000, channels=2).duration_of,
    AudioDecoder(Encoding.LINEAR16, 16_000, channels=2).decode,
    InterleavedFormat(Encoding.LINEAR16, 16_000, 2).duration_of,
])
def test_a_frame_ending_inside_a_sample_frame_is_an_error(
    measure: Callable[[bytes], object],
) -> None:
    with pytest.raises(AudioFormatError, match=(
            r"linear16 frame of 3202 bytes is not a whole number of"
            r" 4-byte sample frames \(2 channels of 2 bytes\)")):
        measure(bytes(3202))


def test_interleaved_format_measures_the_stream_not_its_channels() -> None:
    frames = InterleavedFormat(Encoding.MULAW, 8_000, 2)
    assert frames.duration_of(bytes(1600)) == 0.1  # 800 sample frames
    assert frames.sample_bytes == 1


def stereo_wav(rate: int) -> bytes:
    raw = io.BytesIO()
    sf.write(raw, np.zeros((rate // 10, 2), np.int16), rate, format="WAV",
             subtype="PCM_16")
    return raw.getvalue()


def test_a_wav_header_must_declare_the_streams_channels() -> None:
    stereo = stereo_wav(16_000)
    body = strip_declared_header(stereo, Encoding.LINEAR16, 16_000, 2)
    assert len(body) == 1600 * 2 * 2
    with pytest.raises(AudioFormatError, match=(
            "declared linear16 16000 Hz mono, but the WAV holds linear16"
            " 16000 Hz with 2 channel")):
        strip_declared_header(stereo, Encoding.LINEAR16, 16_000)
    with pytest.raises(AudioFormatError, match=(
            "declared linear16 16000 Hz stereo, but the WAV holds"
            " linear16 16000 Hz with 1 channel")):
        strip_declared_header(wav_bytes(16_000, "PCM_16"),
                              Encoding.LINEAR16, 16_000, 2)
