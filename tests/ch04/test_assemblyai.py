"""The AssemblyAI v3 dialect: Begin, Turns, Termination, and its rules."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import ClientConnection, connect

from ch04_streaming.client import DIALECTS, chunk_bounds, load_audio, stream
from ch04_streaming.dialects.assemblyai import AssemblyAI
from ch04_streaming.dialects.dialect import StreamDefaults
from ch04_streaming.session import SpeechStartedEvent, UtteranceEndEvent
from tests.ch04.harness import KEY, MANIFEST, Start, audio_of, reference


@pytest.mark.parametrize("fixture_id", ["weather_forecast",
                                        "quick_brown_fox_8k_mulaw"])
async def test_fixture_gives_its_reference(
    start_server: Start, fixture_id: str,
) -> None:
    async with start_server() as running:
        report = await stream(running.url, DIALECTS["assemblyai"], KEY,
                              load_audio(audio_of(fixture_id)))
    assert report.close_code == 1000
    assert report.transcript == reference(fixture_id)
    assert report.closing_message is not None
    assert report.closing_message["type"] == "Termination"
    assert report.closing_message["audio_duration_seconds"] == round(
        MANIFEST.get(fixture_id).duration_s)


async def session(running_url: str, query: str = "") -> ClientConnection:
    return await connect(
        f"{running_url}/v3/ws?sample_rate=16000&encoding=pcm_s16le{query}",
        additional_headers={"Authorization": KEY},
    )


async def send_chunks(socket: ClientConnection, payload: bytes) -> None:
    """100 ms chunks, a short tail joined to the last: AssemblyAI takes
    50 to 1000 ms a frame."""
    for start, end in chunk_bounds(len(payload), 3200, 1600):
        await socket.send(payload[start:end])


async def messages_after_terminate(
    socket: ClientConnection,
) -> list[dict[str, object]]:
    await socket.send(json.dumps({"type": "Terminate"}))
    return [json.loads(raw) async for raw in socket]


async def test_turns_mark_final_words_and_end_of_turn(
    start_server: Start,
) -> None:
    async with start_server() as running:
        socket = await session(running.url)
        payload = load_audio(audio_of("quick_brown_fox")).payload
        await send_chunks(socket, payload)
        messages = await messages_after_terminate(socket)
    assert messages[0]["type"] == "Begin"
    assert messages[-1]["type"] == "Termination"
    turns = [m for m in messages if m["type"] == "Turn"]
    assert {t["turn_order"] for t in turns} == {0}
    (end,) = [t for t in turns if t["end_of_turn"]]
    assert end["transcript"] == reference("quick_brown_fox")
    truth = MANIFEST.get("quick_brown_fox").words
    words = end["words"]
    assert isinstance(words, list)
    for got, want in zip(words, truth, strict=True):
        assert got["word_is_final"] and got["text"] == want.word
        assert abs(got["start"] - want.start * 1000) <= 50  # integer ms
    for turn in turns[:-1]:
        words = turn["words"]
        assert isinstance(words, list)
        final = [w["text"] for w in words if w["word_is_final"]]
        # The transcript holds exactly the finalized words.
        assert turn["transcript"] == " ".join(final)


async def test_format_turns_adds_a_formatted_copy(
    start_server: Start,
) -> None:
    async with start_server() as running:
        socket = await session(running.url, "&format_turns=True")
        await send_chunks(socket, load_audio(audio_of("low_latency")).payload)
        messages = await messages_after_terminate(socket)
    (formatted,) = [m for m in messages if m.get("turn_is_formatted")]
    expected = "Streaming audio needs a low latency path."
    assert formatted["transcript"] == expected


async def test_force_endpoint_ends_the_turn(start_server: Start) -> None:
    async with start_server() as running:
        socket = await session(running.url)
        payload = load_audio(audio_of("quick_brown_fox")).payload
        await send_chunks(socket, payload[: 32_000 * 2])
        await socket.send(json.dumps({"type": "ForceEndpoint"}))
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == "Turn" and message["end_of_turn"]:
                break
        assert message["transcript"]
        messages = await messages_after_terminate(socket)
    assert messages[-1]["type"] == "Termination"


ONE_SECOND = 32_000  # bytes of 16 kHz linear16


async def closed_after(running_url: str, frames: list[bytes]
                       ) -> tuple[int | None, str]:
    """Send `frames` unpaced, then Terminate; how did the stream end?"""
    socket = await session(running_url)
    for frame in frames:
        await socket.send(frame)
    await socket.send(json.dumps({"type": "Terminate"}))
    async with asyncio.timeout(10):
        await socket.wait_closed()
    return socket.close_code, socket.close_reason or ""


async def test_look_ahead_is_allowed_up_to_its_limit(
    start_server: Start,
) -> None:
    """Two seconds of audio at once, with two seconds of look-ahead:
    accepted; a third second at once is over the limit, in AssemblyAI's
    own words."""
    audio = load_audio(audio_of("support_call")).payload
    frames = [audio[i * ONE_SECOND : (i + 1) * ONE_SECOND] for i in range(3)]
    limited = {"/v3/ws": AssemblyAI(max_ahead_s=2.0)}
    async with start_server(dialects_by_path=limited) as running:
        at_limit = await closed_after(running.url, frames[:2])
        over = await closed_after(running.url, frames)
    assert at_limit == (1000, "")
    code, reason = over
    assert code == 3007
    assert reason.startswith("Input Duration Error: Audio Transmission"
                             " Rate Exceeded: Received 3.0 sec. audio in")


@pytest.mark.parametrize(("chunk_ms", "accepted"), [
    (49, False), (50, True), (1000, True), (1001, False)])
async def test_chunk_duration_must_be_50_to_1000_ms(
    start_server: Start, chunk_ms: int, accepted: bool,
) -> None:
    audio = load_audio(audio_of("support_call")).payload
    frame = audio[: ONE_SECOND * chunk_ms // 1000]
    async with start_server() as running:
        code, reason = await closed_after(running.url, [frame])
    if accepted:
        assert (code, reason) == (1000, "")
    else:
        assert code == 3007
        assert reason == (f"Input Duration Violation: {chunk_ms:.1f} ms."
                          " Expected between 50 and 1000 ms")


async def test_token_in_query_authenticates(start_server: Start) -> None:
    async with start_server() as running, connect(
        f"{running.url}/v3/ws?sample_rate=16000&token={KEY}"
    ) as socket:
        begin = json.loads(await socket.recv())
        assert begin["type"] == "Begin" and begin["expires_at"] > 0


def test_events_without_a_transcript_say_nothing() -> None:
    dialect = AssemblyAI()
    request = dialect.parse({"sample_rate": "16000"}, StreamDefaults())
    stream = dialect.open_stream(request)
    assert stream.encode(SpeechStartedEvent(1.0)) == []
    assert stream.encode(UtteranceEndEvent(2.0)) == []
