"""The Deepgram dialect end to end: fixtures in, reference text out."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

from ch03_gpu.device import Accelerator, CostModel
from ch04_streaming.client import DIALECTS, load_audio, stream
from ch04_streaming.dialects.dialect import StreamDefaults
from ch04_streaming.session import StreamSession
from ch04_streaming.vad import VadConfig
from tests.ch04.harness import KEY, MANIFEST, Start, audio_of, reference

VARIANTS = ["quick_brown_fox", "quick_brown_fox_8k_mulaw",
            "quick_brown_fox_24k", "quick_brown_fox_48k",
            "quick_brown_fox_flac", "quick_brown_fox_opus"]


@pytest.mark.parametrize("fixture_id", VARIANTS)
async def test_every_encoding_of_a_fixture_gives_its_reference(
    start_server: Start, fixture_id: str,
) -> None:
    async with start_server() as running:
        report = await stream(running.url, DIALECTS["deepgram"], KEY,
                              load_audio(audio_of(fixture_id)))
    assert report.close_code == 1000
    assert report.transcript == reference(fixture_id)
    assert report.closing_message is not None
    assert report.closing_message["type"] == "Metadata"


async def test_long_conversation_transcribed_utterance_by_utterance(
    start_server: Start,
) -> None:
    async with start_server() as running:
        report = await stream(running.url, DIALECTS["deepgram"], KEY,
                              load_audio(audio_of("support_call")))
    assert report.transcript == reference("support_call")
    assert len(report.finals) >= 6  # pauses split it into utterances


async def collect(socket: ClientConnection) -> list[dict[str, object]]:
    messages = []
    async for raw in socket:
        messages.append(json.loads(raw))
    return messages


def listen(base: str, query: str) -> connect:
    """A Deepgram stream of 16 kHz linear16, with `query` added."""
    return connect(
        f"{base}/v1/listen?encoding=linear16&sample_rate=16000&{query}",
        additional_headers={"Authorization": f"Token {KEY}"})


async def send_file(socket: ClientConnection, fixture_id: str,
                    chunk_ms: int = 100) -> None:
    payload = load_audio(audio_of(fixture_id)).payload
    step = 32 * chunk_ms
    for i in range(0, len(payload), step):
        await socket.send(payload[i : i + step])


async def test_results_carry_words_with_manifest_times(
    start_server: Start,
) -> None:
    async with (
        start_server() as running,
        listen(running.url, "interim_results=true&vad_events=true") as socket,
    ):
        await send_file(socket, "quick_brown_fox")
        await socket.send(json.dumps({"type": "CloseStream"}))
        messages = await collect(socket)
    types = [m["type"] for m in messages]
    assert types[0] == "SpeechStarted"
    assert types[-1] == "Metadata"
    finals = [m for m in messages if m["type"] == "Results"
              and m["is_final"]]
    (final,) = [m for m in finals if m["speech_final"]]
    words = final["channel"]["alternatives"][0]["words"]  # type: ignore
    truth = MANIFEST.get("quick_brown_fox").words
    assert [w["word"] for w in words] == [w.word for w in truth]
    for got, want in zip(words, truth, strict=True):
        assert abs(got["start"] - want.start) <= 0.05
        assert abs(got["end"] - want.end) <= 0.05
    interims = [m for m in messages if m["type"] == "Results"
                and not m["is_final"]]
    assert interims, "interim results were asked for"


async def test_utterance_end_follows_a_long_enough_gap(
    start_server: Start,
) -> None:
    async with (
        start_server() as running,
        listen(running.url,
               "interim_results=true&utterance_end_ms=1000") as socket,
    ):
        await send_file(socket, "support_call")
        await socket.send(json.dumps({"type": "CloseStream"}))
        messages = await collect(socket)
    ends = [m["last_word_end"] for m in messages
            if m["type"] == "UtteranceEnd"]
    final_ends = {
        m["channel"]["alternatives"][0]["words"][-1]["end"]  # type: ignore
        for m in messages
        if m["type"] == "Results" and m["is_final"]
        and m["channel"]["alternatives"][0]["words"]  # type: ignore
    }
    # Pauses of 1.2, 1.5 and 2 s exceed the 1 s gap; none other does.
    assert 3 <= len(ends) <= 4
    assert set(ends) <= final_ends


async def test_finalize_flushes_the_open_utterance(
    start_server: Start,
) -> None:
    async with (
        start_server() as running,
        listen(running.url, "interim_results=false") as socket,
    ):
        payload = load_audio(audio_of("quick_brown_fox")).payload
        await socket.send(payload[: 32_000 * 3])  # 3 s: mid-sentence
        await socket.send(json.dumps({"type": "Finalize"}))
        message = json.loads(await socket.recv())
        assert message["is_final"] and message["from_finalize"]
        assert not message["speech_final"]
        text = message["channel"]["alternatives"][0]["transcript"]
        assert reference("quick_brown_fox").startswith(text) and text
        await socket.send(json.dumps({"type": "CloseStream"}))
        rest = await collect(socket)
    assert rest[-1]["type"] == "Metadata"
    assert rest[-1]["duration"] == 3.0


async def test_keepalive_holds_an_idle_stream_open(
    start_server: Start,
) -> None:
    defaults = StreamDefaults(idle_timeout_s=0.3)
    async with (
        start_server(defaults=defaults) as running,
        listen(running.url, "") as socket,
    ):
        for _ in range(4):  # 4 x 0.2 s > the 0.3 s idle timeout
            await socket.send(json.dumps({"type": "KeepAlive"}))
            await asyncio.sleep(0.2)  # a client's keep-alive cadence
        assert socket.state is State.OPEN
        await socket.wait_closed()  # now silent: the server gives up
    assert (socket.close_code, socket.close_reason) == (1011, "NET-0001")


async def test_endpointing_query_sets_the_silence(
    start_server: Start,
) -> None:
    defaults = StreamDefaults(vad=VadConfig(endpointing_ms=300))
    async with (
        start_server(defaults=defaults) as running,
        listen(running.url, "endpointing=2000") as socket,
    ):
        await send_file(socket, "support_call")
        await socket.send(json.dumps({"type": "CloseStream"}))
        messages = await collect(socket)
    finals = [m for m in messages if m["type"] == "Results"
              and m["speech_final"]]
    assert len(finals) <= 2  # no pause is 2 s long: one long utterance


async def test_lagging_inference_skips_interims_never_finals(
    start_server: Start,
) -> None:
    slow = Accelerator(CostModel(fixed_ms=30.0, per_audio_s_ms=0.0))
    async with start_server(device=slow) as running:
        async with listen(running.url, "interim_results=true") as socket:
            await send_file(socket, "support_call", chunk_ms=20)
            await socket.send(json.dumps({"type": "CloseStream"}))
            (handler,) = running.server.handlers
            messages = await collect(socket)
        session = handler.session
        assert isinstance(session, StreamSession)  # mono: one session
        stats, gate = session.stats, session.vad
    # 2,200 chunks arrived faster than 30 ms decodes could follow: most
    # interim updates were skipped, yet all the speech was decoded.
    assert stats.interims_skipped > 1000
    assert stats.decoded_s == pytest.approx(gate.frames_passed * 0.02)
    finals = [m["channel"]["alternatives"][0]["transcript"]  # type: ignore
              for m in messages if m["type"] == "Results" and m["is_final"]]
    assert " ".join(t for t in finals if t) == reference("support_call")
