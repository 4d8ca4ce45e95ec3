"""The two WebSocket framings: same words, and bad frames closed clearly."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from ch04_streaming.client import load_audio, stream
from ch04_streaming.dialects.dialect import Closing, Control
from ch05_protocols.ws_client import base64_client, base64_frame, binary_client
from ch05_protocols.ws_dialects import (
    MAX_DATA_CHARS,
    read_base64,
    read_binary,
)
from tests.ch04.harness import KEY, Start, audio_of, reference

BASE64 = "/ws/base64?encoding=linear16&sample_rate=16000"
BINARY = "/ws/binary?encoding=linear16&sample_rate=16000"
HEADERS = {"Authorization": f"Token {KEY}"}


def audio_message(data: str) -> str:
    return json.dumps({"type": "audio", "data": data})


def test_binary_framing_takes_bytes_as_they_are() -> None:
    assert read_binary(b"\x01\x02") == b"\x01\x02"
    assert read_binary('{"type": "finalize"}') is Control.FINALIZE


def test_base64_framing_decodes_audio_once() -> None:
    assert read_base64(audio_message("AQI=")) == b"\x01\x02"
    assert read_base64('{"type": "close"}') is Control.CLOSE
    assert read_base64('{"type": "keep_alive"}') is Control.KEEP_ALIVE


@pytest.mark.parametrize(("frame", "code", "reason"), [
    (b"\0\0", 1003, "unsupported data: send audio as text"),
    (audio_message("not base64!"), 1007,
     "invalid audio: data is not valid base64"),
    ('{"type": "audio", "data": 12}', 1007,
     "invalid audio: data must be a base64 string"),
    (audio_message("A" * (MAX_DATA_CHARS + 4)), 1009,
     f"message too big: data of {MAX_DATA_CHARS + 4} characters"),
    ('{"type": "shout"}', 1008, "invalid message: expected JSON"),
    ("not json", 1008, "invalid message: expected JSON"),
    ('{"data": "AQI="}', 1008, "invalid message: expected JSON"),
])
def test_base64_framing_refuses_with_a_reason(
    frame: str | bytes, code: int, reason: str,
) -> None:
    refused = read_base64(frame)
    assert isinstance(refused, Closing)
    assert refused.code == code and refused.reason.startswith(reason)


def test_binary_framing_refuses_audio_in_text() -> None:
    refused = read_binary(audio_message("AQI="))
    assert refused == Closing(
        1008, "invalid message: expected a JSON control: finalize,"
        " keep_alive, close")


@pytest.mark.parametrize("framing", ["base64", "binary"])
async def test_both_framings_hear_the_same_words(
    start_server: Start, framing: str,
) -> None:
    audio = load_audio(audio_of("quick_brown_fox"))
    dialect = base64_client() if framing == "base64" else binary_client()
    async with start_server() as running:
        report = await stream(
            running.url, dialect, KEY, audio,
            frame_audio=base64_frame if framing == "base64" else bytes)
    assert report.close_code == 1000
    assert report.transcript == reference("quick_brown_fox")


async def test_base64_costs_a_third_more_bytes(start_server: Start) -> None:
    audio = load_audio(audio_of("quick_brown_fox"))
    async with start_server() as running:
        binary = await stream(running.url, binary_client(), KEY, audio)
        text = await stream(running.url, base64_client(), KEY, audio,
                            frame_audio=base64_frame)
    # 4 characters per 3 bytes, plus the JSON around each chunk.
    assert 1.33 < text.bytes_sent / binary.bytes_sent < 1.35


async def closed_with(start_server: Start, path: str,
                      *frames: bytes | str) -> tuple[int | None, str]:
    async with start_server() as running:
        socket = await connect(running.url + path,
                               additional_headers=HEADERS)
        for frame in frames:
            await socket.send(frame)
        async with asyncio.timeout(10):
            await socket.wait_closed()
    return socket.close_code, socket.close_reason or ""


@pytest.mark.parametrize(("frame", "code", "reason"), [
    (b"\0" * 3200, 1003, "unsupported data"),
    (audio_message("@@@@"), 1007, "invalid audio: data is not valid"),
    (audio_message("A" * (MAX_DATA_CHARS + 4)), 1009, "message too big"),
    ('{"type": "Finalize"}', 1008, "invalid message"),
    # Valid base64 of 3 bytes: not whole 16-bit samples.
    (audio_message("AAAA"), 1007, "invalid audio: linear16 frame of 3"),
])
async def test_bad_frames_close_the_base64_stream(
    start_server: Start, frame: bytes | str, code: int, reason: str,
) -> None:
    got_code, got_reason = await closed_with(start_server, BASE64, frame)
    assert got_code == code and got_reason.startswith(reason)


async def test_audio_in_text_closes_the_binary_stream(
    start_server: Start,
) -> None:
    code, reason = await closed_with(start_server, BINARY,
                                     audio_message("AAAA"))
    assert code == 1008 and reason.startswith("invalid message")


async def test_a_bad_stream_leaves_the_others_alone(
    start_server: Start,
) -> None:
    audio = load_audio(audio_of("quick_brown_fox"))
    async with start_server() as running:
        good = asyncio.create_task(stream(
            running.url, base64_client(), KEY, audio, chunk_ms=100,
            frame_audio=base64_frame))
        bad = await connect(running.url + BASE64, additional_headers=HEADERS)
        await bad.send(audio_message("@@@@"))
        async with asyncio.timeout(30):
            await bad.wait_closed()
            report = await good
    assert bad.close_code == 1007
    assert report.close_code == 1000
    assert report.transcript == reference("quick_brown_fox")


async def test_the_closing_message_reports_dropped_audio(
    start_server: Start,
) -> None:
    async with start_server() as running:
        socket = await connect(running.url + BASE64,
                               additional_headers=HEADERS)
        await socket.send(audio_message(
            base64.b64encode(bytes(3200)).decode()))
        await socket.send('{"type": "close"}')
        async with asyncio.timeout(10):
            messages = [json.loads(m) async for m in socket]
    assert messages[-1] == {"type": "closed", "audio_s": 0.1,
                            "dropped_audio_s": 0.0}


@pytest.mark.parametrize(("query", "reason"), [
    ("backpressure=later", "backpressure must be buffer or drop"),
    ("encoding=opus", "encoding 'opus' is not supported"),
])
async def test_bad_queries_are_refused_before_the_upgrade(
    start_server: Start, query: str, reason: str,
) -> None:
    async with start_server() as running, httpx.AsyncClient() as client:
        response = await client.get(
            f"{running.http}/ws/base64?{query}", headers={
                **HEADERS, "Connection": "Upgrade", "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status_code == 400
    assert reason in response.json()["reason"]


async def test_a_browser_may_send_its_key_in_the_query(
    start_server: Start,
) -> None:
    async with start_server() as running:
        socket = await connect(f"{running.url}{BASE64}&token={KEY}")
        await socket.send('{"type": "close"}')
        async with asyncio.timeout(10):
            messages = [json.loads(m) async for m in socket]
    assert messages[-1]["type"] == "closed"
