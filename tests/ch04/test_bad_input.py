"""Bad input gets its documented close code, and nobody else suffers."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
import soundfile as sf
from websockets.asyncio.client import connect
from websockets.protocol import State

from ch03_gpu.device import Accelerator, CostModel
from ch03_gpu.profiles import PROFILES
from ch04_streaming.app import session_factory
from ch04_streaming.backpressure import Outbox, SlowConsumerError
from ch04_streaming.client import DIALECTS, load_audio, stream
from ch04_streaming.dialects.deepgram import Deepgram, UtteranceEnd
from ch04_streaming.dialects.dialect import StreamDefaults
from ch04_streaming.engine import LocalMatching, MockRecognizer
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.scheduler import DirectScheduler
from ch04_streaming.server import ServerLimits
from ch04_streaming.stream_handler import ConnectionLimits, StreamHandler
from tests.ch04.harness import KEY, Start, audio_of, reference

DEEPGRAM = "/v1/listen?encoding=linear16&sample_rate=16000"
ASSEMBLYAI = "/v3/ws?encoding=pcm_s16le&sample_rate=16000"
HEADERS = {DEEPGRAM: {"Authorization": f"Token {KEY}"},
           ASSEMBLYAI: {"Authorization": KEY}}


async def closed_with(
    start_server: Start, path: str, *frames: bytes | str,
    defaults: StreamDefaults | None = None,
) -> tuple[int | None, str | None]:
    async with start_server(defaults=defaults) as running:
        socket = await connect(running.url + path,
                               additional_headers=HEADERS[path])
        for frame in frames:
            await socket.send(frame)
        await socket.wait_closed()
    return socket.close_code, socket.close_reason


@pytest.mark.parametrize(("path", "code", "reason"), [
    (DEEPGRAM, 1008, "DATA-0000: linear16 frame of 3 bytes"),
    (ASSEMBLYAI, 3007, "invalid audio: linear16 frame of 3 bytes"),
])
async def test_odd_length_pcm_frame(
    start_server: Start, path: str, code: int, reason: str,
) -> None:
    got = await closed_with(start_server, path, bytes(3200), b"\0\0\0")
    assert got[0] == code and (got[1] or "").startswith(reason)


def wav_file(rate: int, subtype: str) -> bytes:
    raw = io.BytesIO()
    sf.write(raw, np.zeros(rate // 10), rate, format="WAV", subtype=subtype)
    return raw.getvalue()


async def test_wav_header_that_contradicts_the_query(
    start_server: Start,
) -> None:
    code, reason = await closed_with(
        start_server, DEEPGRAM, wav_file(8_000, "ULAW"))
    assert code == 1008
    assert "declared linear16 16000 Hz mono, but the WAV holds mulaw" in (
        reason or "")


async def test_wav_header_that_agrees_is_stripped(start_server: Start) -> None:
    async with start_server() as running:
        socket = await connect(running.url + DEEPGRAM,
                               additional_headers=HEADERS[DEEPGRAM])
        await socket.send(audio_of("low_latency").read_bytes())  # whole file
        await socket.send(json.dumps({"type": "CloseStream"}))
        results = [json.loads(m) async for m in socket]
    text = [r["channel"]["alternatives"][0]["transcript"]
            for r in results if r["type"] == "Results" and r["is_final"]]
    assert " ".join(t for t in text if t) == reference("low_latency")


@pytest.mark.parametrize(("fixture_id", "container"), [
    ("quick_brown_fox_opus", "ogg"), ("quick_brown_fox_flac", "flac"),
])
async def test_container_against_a_declared_raw_encoding_is_refused(
    start_server: Start, fixture_id: str, container: str,
) -> None:
    """A container is taken when the query omits `encoding` or names the
    container's codec; `encoding=linear16` says raw PCM, so it is not."""
    code, reason = await closed_with(
        start_server, DEEPGRAM, audio_of(fixture_id).read_bytes()[:4000])
    assert (code, reason) == (
        1008, f"DATA-0000: {container} container, but raw linear16 was"
        " declared")


@pytest.mark.parametrize(("path", "frame", "code"), [
    (DEEPGRAM, "not json", 1008),
    (DEEPGRAM, '{"type": "Shout"}', 1008),
    (DEEPGRAM, '{"no_type": 1}', 1008),
    (ASSEMBLYAI, "{oops", 3006),
    (ASSEMBLYAI, '{"type": "Finalize"}', 3006),  # Deepgram's word
])
async def test_bad_control_messages(
    start_server: Start, path: str, frame: str, code: int,
) -> None:
    got_code, reason = await closed_with(start_server, path, frame)
    assert got_code == code
    assert "expected a JSON" in (reason or "")


async def test_oversized_frame_closes_1009(start_server: Start) -> None:
    code, _ = await closed_with(start_server, DEEPGRAM, b"\0" * (300 * 1024))
    assert code == 1009


async def test_silent_client_is_closed_after_idle_time(
    start_server: Start,
) -> None:
    code, reason = await closed_with(
        start_server, DEEPGRAM, defaults=StreamDefaults(idle_timeout_s=0.2))
    assert (code, reason) == (1011, "NET-0001")


async def test_vanishing_client_does_not_disturb_others(
    start_server: Start,
) -> None:
    async with start_server() as running:
        leaver = await connect(running.url + DEEPGRAM,
                               additional_headers=HEADERS[DEEPGRAM])
        payload = load_audio(audio_of("card_number")).payload
        await leaver.send(payload[: len(payload) // 2])  # mid-utterance
        leaver.transport.abort()  # gone: no close frame
        report = await stream(running.url, DIALECTS["deepgram"], KEY,
                              load_audio(audio_of("call_back")))
        assert report.transcript == reference("call_back")
        async with asyncio.timeout(5):
            while running.server.handlers:
                await asyncio.sleep(0.01)
        assert not running.server.admitted


class StuckConnection:
    """A socket whose peer never reads: every send waits forever."""

    async def send(self, text: str) -> None:
        await asyncio.Event().wait()


async def test_outbox_refuses_to_grow_for_a_non_reader() -> None:
    outbox = Outbox(StuckConnection(), limit=3)
    sender = asyncio.create_task(outbox.run())
    for n in range(4):  # one in flight, three queued
        outbox.put(UtteranceEnd(last_word_end=n))
        await asyncio.sleep(0)
    with pytest.raises(SlowConsumerError, match="3 messages unread"):
        outbox.put(UtteranceEnd(last_word_end=4))
    sender.cancel()


class NonReadingPeer:
    """A connection whose client sends audio but never reads results."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = iter(frames)
        self.state = State.OPEN
        self.closed_with: tuple[int, str] | None = None
        self.input_ended = False

    async def recv(self) -> bytes:
        frame = next(self.frames, None)
        if frame is None:
            await asyncio.Event().wait()  # the client goes quiet
        assert frame is not None
        return frame

    async def send(self, text: str) -> None:
        await asyncio.Event().wait()  # its receive window is full

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)
        self.state = State.CLOSED


async def test_client_that_stops_reading_is_cut(lexicon: Lexicon) -> None:
    payload = load_audio(audio_of("support_call")).payload
    peer = NonReadingPeer([payload[i : i + 3200]
                           for i in range(0, len(payload), 3200)])
    query = {"encoding": "linear16", "sample_rate": "16000",
             "interim_results": "true"}
    dialect = Deepgram()
    limits = ConnectionLimits(send_queue=4)
    engine = MockRecognizer(LocalMatching(lexicon),
                            Accelerator(PROFILES["zero"]))
    handler = StreamHandler(
        peer, dialect, dialect.parse(query, StreamDefaults()),
        session_factory(DirectScheduler(engine), limits), limits,
    )
    async with asyncio.timeout(10):
        closing = await handler.run()
    assert closing is not None
    assert peer.closed_with == (closing.code, closing.reason)
    assert closing.code == 1008
    assert closing.reason == (
        "NET-0002: 4 messages unread: client is not reading")


async def test_an_idle_close_is_not_a_stream_error(
    start_server: Start,
) -> None:
    """Deepgram closes a quiet client with 1011 NET-0001: the client's
    silence, not a server error, so the error counter stays at zero."""
    defaults = StreamDefaults(idle_timeout_s=0.2)
    async with start_server(defaults=defaults) as running:
        socket = await connect(running.url + DEEPGRAM,
                               additional_headers=HEADERS[DEEPGRAM])
        async with asyncio.timeout(5):
            await socket.wait_closed()
        async with asyncio.timeout(5):
            while running.server.handlers:
                await asyncio.sleep(0.01)
        errors = running.server.metrics.stream_errors.labels(
            "deepgram", "1011")._value.get()
    assert (socket.close_code, socket.close_reason) == (1011, "NET-0001")
    assert errors == 0


async def test_a_client_faster_than_decoding_is_held_at_the_cap(
    start_server: Start,
) -> None:
    """Through a real socket: 20 s of audio sent at once to a model
    that needs 300 ms a call. Undecoded audio never grows past the cap
    (1 s), plus the frame that waited for room and, when that frame
    starts an utterance, the pre-roll it replays (300 ms, received
    earlier): the reader stops reading instead, and every word still
    arrives."""
    slow = Accelerator(CostModel(fixed_ms=300, per_audio_s_ms=0))
    limits = ServerLimits(connection=ConnectionLimits(
        max_pending_audio_s=1.0))
    payload = load_audio(audio_of("support_call")).payload[: 32_000 * 20]
    async with start_server(limits=limits, device=slow) as running:
        socket = await connect(running.url + DEEPGRAM,
                               additional_headers=HEADERS[DEEPGRAM])
        (handler,) = running.server.handlers
        for start in range(0, len(payload), 3200):
            await socket.send(payload[start : start + 3200])
        await socket.send(json.dumps({"type": "CloseStream"}))
        async with asyncio.timeout(60):
            results = [json.loads(m) async for m in socket]
    cap = handler.session.cap
    assert cap.peak_s > 0.5  # the cap was reached, not idle
    assert cap.peak_s <= 1.0 + 0.1 + 0.3
    finals = [r for r in results if r.get("is_final")]
    assert handler.session.stats.received_s == 20.0
    assert finals
