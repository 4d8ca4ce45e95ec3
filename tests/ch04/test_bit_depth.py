"""32-bit float audio (Deepgram's `linear32`) gives 16-bit audio's words."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ch04_streaming.audio import (
    AudioDecoder,
    AudioFormatError,
    Encoding,
    strip_declared_header,
)
from ch04_streaming.client import DIALECTS, ClientAudio, load_audio, stream
from tests.ch04.harness import KEY, Start, audio_of, reference

LINEAR32 = "/v1/listen?encoding=linear32&sample_rate=16000"
HEADERS = {"Authorization": f"Token {KEY}"}


def as_float32(audio: ClientAudio) -> ClientAudio:
    """16-bit PCM -> the same samples as 32-bit float, exactly."""
    pcm = np.frombuffer(audio.payload, dtype="<i2")
    samples = (pcm.astype(np.float32) / 32768.0).astype("<f4")
    return ClientAudio(samples.tobytes(), "linear32", audio.sample_rate)


def float_wav(samples: np.ndarray, rate: int, subtype: str) -> bytes:
    raw = io.BytesIO()
    sf.write(raw, samples, rate, format="WAV", subtype=subtype)
    return raw.getvalue()


@pytest.mark.parametrize("fixture_id", ["quick_brown_fox",
                                        "quick_brown_fox_48k"])
async def test_linear32_gives_the_words_of_linear16(
    start_server: Start, fixture_id: str,
) -> None:
    audio = as_float32(load_audio(audio_of(fixture_id)))
    async with start_server() as running:
        report = await stream(running.url, DIALECTS["deepgram"], KEY, audio)
    assert report.close_code == 1000
    assert report.transcript == reference(fixture_id)
    assert report.closing_message is not None
    duration = report.closing_message["duration"]
    assert isinstance(duration, float)
    # 4 bytes a sample: twice the bytes of 16-bit, the same seconds.
    assert duration == pytest.approx(
        len(audio.payload) / 4 / audio.sample_rate, abs=1e-3)


def test_float32_frame_lasts_a_quarter_of_its_bytes() -> None:
    decoder = AudioDecoder(Encoding.FLOAT32, 16_000)
    assert decoder.duration_of(bytes(64_000)) == pytest.approx(1.0)
    with pytest.raises(AudioFormatError, match="4-byte samples"):
        decoder.duration_of(bytes(64_002))


def test_float_wav_header_is_recognised_and_stripped() -> None:
    samples = np.linspace(-0.5, 0.5, 160, dtype=np.float32)
    body = strip_declared_header(float_wav(samples, 16_000, "FLOAT"),
                                 Encoding.FLOAT32, 16_000)
    assert np.array_equal(np.frombuffer(body, dtype="<f4"), samples)


async def test_float_wav_file_gives_its_words(
    start_server: Start,
) -> None:
    data, rate = sf.read(str(audio_of("low_latency")), dtype="float32")
    async with start_server() as running:
        socket = await connect(running.url + LINEAR32.replace(
            "16000", str(rate)), additional_headers=HEADERS)
        wav = float_wav(data, rate, "FLOAT")  # an 80-byte header
        for i in range(0, len(wav), 6400):  # the header in the first
            await socket.send(wav[i : i + 6400])
        await socket.send(json.dumps({"type": "CloseStream"}))
        results = [json.loads(m) async for m in socket]
    text = [r["channel"]["alternatives"][0]["transcript"]
            for r in results if r["type"] == "Results" and r["is_final"]]
    assert " ".join(t for t in text if t) == reference("low_latency")


async def closed_with(start_server: Start, *frames: bytes
                      ) -> tuple[int | None, str | None]:
    async with start_server() as running:
        socket = await connect(running.url + LINEAR32,
                               additional_headers=HEADERS)
        for frame in frames:
            await socket.send(frame)
        await socket.wait_closed()
    return socket.close_code, socket.close_reason


async def test_linear32_frame_of_partial_samples_is_refused(
    start_server: Start,
) -> None:
    code, reason = await closed_with(start_server, bytes(6400), bytes(6))
    assert code == 1008
    assert (reason or "").startswith(
        "DATA-0000: float32 frame of 6 bytes is not a whole number of"
        " 4-byte samples")


@pytest.mark.parametrize(("subtype", "holds"), [
    ("PCM_32", "32-bit integer PCM"),  # 32 bits, but not float
    ("PCM_16", "linear16"),
])
async def test_wav_header_contradicting_linear32_is_refused(
    start_server: Start, subtype: str, holds: str,
) -> None:
    wav = float_wav(np.zeros(1600, np.float32), 16_000, subtype)
    code, reason = await closed_with(start_server, wav)
    assert code == 1008
    assert (reason or "").startswith(
        f"DATA-0000: declared float32 16000 Hz mono, but the WAV holds"
        f" {holds} 16000 Hz")


async def test_linear32_is_refused_by_assemblyai(start_server: Start) -> None:
    # AssemblyAI names 16-bit PCM and mu-law only.
    async with start_server() as running:
        with pytest.raises(InvalidStatus) as refused:
            await connect(
                running.url + "/v3/ws?encoding=linear32&sample_rate=16000",
                additional_headers={"Authorization": KEY})
    assert refused.value.response.status_code == 400
