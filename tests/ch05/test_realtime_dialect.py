"""The OpenAI Realtime transcription dialect, with OpenAI's own SDK.

The unmodified `openai` SDK streams fixtures to `/v1/realtime` and gets
their reference transcripts. Raw WebSocket clients then send what the
SDK never would: unknown events, bad base64, the wrong rate, binary
frames, commits of nothing. Each is answered with an `error` event in
OpenAI's shape, and the stream goes on serving, as do the others.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from ch04_streaming.dialects.dialect import (
    ClientEvent,
    ControlFrame,
    StreamDefaults,
)
from ch04_streaming.dialects.openai_events import MAX_AUDIO_CHARS
from ch04_streaming.dialects.openai_realtime import OpenAIRealtime
from ch04_streaming.session import UtteranceEndEvent
from examples.realtime_sdk import main, pcm24k, transcribe
from tests.ch04.harness import KEY, Running, Start, audio_of, reference

PATH = "/v1/realtime?intent=transcription"
TIMEOUT_S = 30.0


@pytest.mark.parametrize("fixture_id", ["quick_brown_fox", "support_call",
                                        "card_number"])
async def test_the_openai_sdk_gets_the_reference_transcript(
        start_server: Start, fixture_id: str) -> None:
    pcm = pcm24k(audio_of(fixture_id))
    async with start_server() as running:
        async with asyncio.timeout(TIMEOUT_S):
            heard = await transcribe(f"{running.http}/v1", KEY, pcm)
    assert " ".join(heard.transcripts) == reference(fixture_id)
    assert heard.errors == []
    assert heard.started == heard.done  # every item completed
    assert heard.deltas >= len(heard.transcripts)
    audio_s = len(pcm) / 48_000
    assert 0.5 * audio_s < heard.seconds <= audio_s + 0.5


@asynccontextmanager
async def realtime(running: Running, **headers: str
                   ) -> AsyncIterator[ClientConnection]:
    """A raw connection, past `session.created`."""
    auth = {"Authorization": f"Bearer {KEY}", **headers}
    async with connect(running.url + PATH,
                       additional_headers=auth) as socket:
        created = await event(socket)
        assert created["type"] == "session.created"
        assert created["session"]["type"] == "transcription"
        yield socket


async def event(socket: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT_S):
        message = json.loads(await socket.recv())
    assert isinstance(message, dict) and "event_id" in message
    return message


async def error_of(socket: ClientConnection, sent: str | bytes
                   ) -> dict[str, Any]:
    await socket.send(sent)
    answer = await event(socket)
    assert answer["type"] == "error", answer
    error: dict[str, Any] = answer["error"]
    assert error["type"] == "invalid_request_error"
    return error


def append(pcm: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append",
                       "audio": base64.b64encode(pcm).decode()})


async def still_transcribes(socket: ClientConnection, fixture_id: str
                            ) -> list[dict[str, Any]]:
    """After an error, the same stream transcribes a fixture; the
    events it took."""
    pcm = pcm24k(audio_of(fixture_id))
    for offset in range(0, len(pcm), 4800):
        await socket.send(append(pcm[offset:offset + 4800]))
    await socket.send(json.dumps({"type": "input_audio_buffer.commit"}))
    said: list[str] = []
    seen = []
    while " ".join(said) != reference(fixture_id):
        seen.append(message := await event(socket))
        assert message["type"] != "error", message
        if message["type"].endswith("transcription.completed"):
            said.append(message["transcript"])
    return seen


BAD_EVENTS = {
    "unknown type": (json.dumps({"type": "response.create"}),
                     "invalid_value", "type"),
    "not JSON": ("{nope", "invalid_json", None),
    "not an object": ("[1, 2]", "invalid_json", None),
    "no type": ('{"audio": ""}', "missing_required_parameter", "type"),
    "base64 that does not decode": (
        json.dumps({"type": "input_audio_buffer.append", "audio": "%%%"}),
        "invalid_base64", "audio"),
    "half a sample": (append(b"\x01\x02\x03"), "invalid_audio", "audio"),
    "audio too long": (
        json.dumps({"type": "input_audio_buffer.append",
                    "audio": "A" * (MAX_AUDIO_CHARS + 4)}),
        "too_big", "audio"),
    "the wrong rate for the session": (
        json.dumps({"type": "session.update", "session": {
            "type": "transcription", "audio": {"input": {"format": {
                "type": "audio/pcm", "rate": 16000}}}}}),
        "invalid_value", "session.audio.input.format.rate"),
    "a codec not served": (
        json.dumps({"type": "session.update", "session": {
            "type": "transcription", "audio": {"input": {"format": {
                "type": "audio/pcma"}}}}}),
        "invalid_value", "session.audio.input.format.type"),
    "a conversation session": (
        json.dumps({"type": "session.update",
                    "session": {"type": "realtime"}}),
        "invalid_value", "session.type"),
    "semantic turn detection": (
        json.dumps({"type": "session.update", "session": {
            "type": "transcription", "audio": {"input": {
                "turn_detection": {"type": "semantic_vad"}}}}}),
        "invalid_value", "session.audio.input.turn_detection.type"),
}


@pytest.mark.parametrize("name", list(BAD_EVENTS))
async def test_a_bad_event_is_answered_and_the_stream_goes_on(
        start_server: Start, name: str) -> None:
    sent, code, param = BAD_EVENTS[name]
    async with start_server() as running, realtime(running) as socket:
        error = await error_of(socket, sent)
        assert (error["code"], error["param"]) == (code, param)
        assert error["message"]
        await still_transcribes(socket, "quick_brown_fox")


async def test_a_binary_frame_is_refused_as_no_event(
        start_server: Start) -> None:
    async with start_server() as running, realtime(running) as socket:
        error = await error_of(socket, b"\x00\x00" * 480)
        assert "input_audio_buffer.append" in error["message"]
        await still_transcribes(socket, "quick_brown_fox")


async def test_a_commit_of_nothing_names_the_client_event(
        start_server: Start) -> None:
    commit = {"type": "input_audio_buffer.commit", "event_id": "ev_1"}
    async with start_server() as running, realtime(running) as socket:
        error = await error_of(socket, json.dumps(commit))
        assert error["code"] == "input_audio_buffer_commit_empty"
        assert error["event_id"] == "ev_1"


async def test_a_commit_of_silence_is_an_empty_item(
        start_server: Start) -> None:
    async with start_server() as running, realtime(running) as socket:
        await socket.send(append(bytes(2 * 24_000 // 2)))  # 0.5 s
        await socket.send(json.dumps({"type": "input_audio_buffer.commit"}))
        committed = await event(socket)
        completed = await event(socket)
    assert committed["type"] == "input_audio_buffer.committed"
    assert completed["item_id"] == committed["item_id"]
    assert completed["transcript"] == ""
    assert completed["usage"] == {"type": "duration", "seconds": 0.5}


async def test_cleared_speech_is_never_transcribed(
        start_server: Start) -> None:
    pcm = pcm24k(audio_of("quick_brown_fox"))
    half = len(pcm) // 2 // 4800 * 4800
    async with start_server() as running, realtime(running) as socket:
        for offset in range(0, half, 4800):
            await socket.send(append(pcm[offset:offset + 4800]))
        await socket.send(json.dumps({"type": "input_audio_buffer.clear"}))
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["type"] != "input_audio_buffer.cleared":
            seen.append(await event(socket))
        seen += await still_transcribes(socket, "quick_brown_fox")
    cleared = seen[0]["item_id"]
    assert seen[0]["type"] == "input_audio_buffer.speech_started"
    assert [e["type"] for e in seen if e.get("item_id") == cleared] == [
        "input_audio_buffer.speech_started"]


async def test_session_update_echoes_what_the_server_honours(
        start_server: Start) -> None:
    update = {"type": "session.update", "session": {
        "type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": {"type": "server_vad"}}}}}
    async with start_server() as running, realtime(running) as socket:
        await socket.send(json.dumps(update))
        updated = await event(socket)
    assert updated["type"] == "session.updated"
    given = updated["session"]["audio"]["input"]
    assert given["transcription"] == {"model": "whisper-1", "language": "en"}
    assert given["format"] == {"type": "audio/pcm", "rate": 24000}
    assert given["turn_detection"]["silence_duration_ms"] == 300


async def test_a_browser_sends_its_key_as_a_subprotocol(
        start_server: Start) -> None:
    offered = ["realtime", f"openai-insecure-api-key.{KEY}"]
    async with start_server() as running, connect(
            running.url + PATH, subprotocols=offered) as socket:  # type: ignore[arg-type]
        assert socket.subprotocol == "realtime"
        assert (await event(socket))["type"] == "session.created"


@pytest.mark.parametrize(("path", "headers", "status"), [
    (PATH, {}, 401),
    (PATH, {"Authorization": "Bearer wrong"}, 401),
    ("/v1/realtime", {"Authorization": f"Bearer {KEY}"}, 400),
    ("/v1/realtime?intent=conversation", {"Authorization": f"Bearer {KEY}"},
     400),
])
async def test_refused_before_the_upgrade(
        start_server: Start, path: str, headers: dict[str, str],
        status: int) -> None:
    async with start_server() as running:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(running.url + path,
                               additional_headers=headers):
                pass
    assert refused.value.response.status_code == status


async def test_a_misbehaving_stream_leaves_the_others_alone(
        start_server: Start) -> None:
    pcm = pcm24k(audio_of("quick_brown_fox"))
    async with start_server() as running, realtime(running) as bad:
        good = asyncio.create_task(
            transcribe(f"{running.http}/v1", KEY, pcm))
        for sent, _, _ in BAD_EVENTS.values():
            await error_of(bad, sent)
        async with asyncio.timeout(TIMEOUT_S):
            heard = await good
    assert " ".join(heard.transcripts) == reference("quick_brown_fox")


async def test_the_example_prints_each_transcript(
        start_server: Start, capsys: pytest.CaptureFixture[str]) -> None:
    async with start_server() as running:
        status = await asyncio.to_thread(main, [
            str(audio_of("support_call")), "--url", f"{running.http}/v1",
            "--key", KEY])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert " ".join(lines[:-1]) == reference("support_call")
    assert lines[-1].startswith(f"{len(lines) - 1} items, ")


def test_what_openai_has_no_event_for_sends_nothing() -> None:
    """Deepgram's `UtteranceEnd` has no OpenAI event; an event the
    dialect never reads is a programming error, said at once."""
    dialect = OpenAIRealtime()
    stream = dialect.open_stream(dialect.parse(
        {"intent": "transcription"}, StreamDefaults()))
    assert stream.encode(UtteranceEndEvent(last_word_end=1.0)) == []
    with pytest.raises(TypeError, match="not a client event"):
        stream.answer(ClientEvent(ControlFrame(type="KeepAlive")))


async def test_at_the_pace_of_speech_each_final_is_timed(
        start_server: Start) -> None:
    pcm = pcm24k(audio_of("quick_brown_fox"))
    async with start_server() as running:
        async with asyncio.timeout(TIMEOUT_S):
            heard = await transcribe(f"{running.http}/v1", KEY, pcm,
                                     realtime=True)
    assert " ".join(heard.transcripts) == reference("quick_brown_fox")
    (latency,) = heard.latencies_ms  # from its speech_stopped's end
    assert 0 <= latency < TIMEOUT_S * 1000
