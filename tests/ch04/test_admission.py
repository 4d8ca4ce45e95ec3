"""Decisions before the upgrade: keys, caps, readiness, bad queries."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ch04_streaming.auth import ApiKeys, load_api_keys
from ch04_streaming.client import DIALECTS, load_audio, stream
from ch04_streaming.server import ServerLimits
from ch04_streaming.stream_handler import ConnectionLimits
from ch04_streaming.stream_hooks import Refusal, StreamStart, StreamTracker
from tests.ch04.harness import KEY, Start, audio_of, reference

LISTEN = "/v1/listen?encoding=linear16&sample_rate=16000"
HeaderList = dict[str, str] | list[tuple[str, str]]


async def refused(url: str, headers: HeaderList | None = None
                  ) -> tuple[int, dict[str, object], str | None]:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, additional_headers=headers or {}):
            pass
    response = caught.value.response
    body = json.loads(response.body.decode())
    return response.status_code, body, response.headers.get("Retry-After")


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "missing API key"),
    ({"Authorization": "Token wrong"}, "invalid API key"),
    ({"Authorization": f"Basic {KEY}"}, "missing API key"),
])
async def test_bad_credentials_get_401_before_upgrade(
    start_server: Start, headers: dict[str, str], reason: str,
) -> None:
    async with start_server() as running:
        status, body, _ = await refused(running.url + LISTEN, headers)
    assert (status, body["reason"]) == (401, reason)
    assert body["type"] == "Error"


async def test_assemblyai_wants_its_own_header_form(
    start_server: Start,
) -> None:
    async with start_server() as running:
        status, _, _ = await refused(
            running.url + "/v3/ws", {"Authorization": f"Token {KEY}"})
    assert status == 401


@pytest.mark.parametrize(("query", "reason"), [
    ("encoding=speex&sample_rate=16000",
     "encoding 'speex' is not supported"),
    ("encoding=linear16&sample_rate=44100", "sample_rate must be one of"),
    ("sample_rate=16k", "sample_rate must be a whole number"),
    ("channels=3", "channels=3 is not served: at most 2 channels"),
    ("channels=21", "channels must be from 1 to 20"),
    ("channels=0", "channels must be from 1 to 20"),
    ("multichannel=maybe", "multichannel must be true or false"),
    ("interim_results=maybe", "interim_results must be true or false"),
    ("utterance_end_ms=1000", "utterance_end_ms needs interim_results"),
])
async def test_bad_query_gets_400_with_reason(
    start_server: Start, query: str, reason: str,
) -> None:
    async with start_server() as running:
        status, body, _ = await refused(
            f"{running.url}/v1/listen?{query}",
            {"Authorization": f"Token {KEY}"})
    assert status == 400
    assert reason in str(body["reason"])


async def test_stream_cap_answers_503_with_retry_hint(
    start_server: Start,
) -> None:
    limits = ServerLimits(max_streams=2, connection=ConnectionLimits())
    headers = {"Authorization": f"Token {KEY}"}
    async with start_server(limits=limits) as running:
        first = await connect(running.url + LISTEN,
                              additional_headers=headers)
        second = await connect(running.url + LISTEN,
                               additional_headers=headers)
        status, body, retry = await refused(running.url + LISTEN, headers)
        assert (status, retry) == (503, "1")
        assert "at capacity: 2 streams" in str(body["reason"])
        await first.close()
        await first.wait_closed()
        async with asyncio.timeout(5):  # the slot is freed at once
            while len(running.server.admitted) > 1:
                await asyncio.sleep(0.01)
        third = await connect(running.url + LISTEN,
                              additional_headers=headers)
        await third.close()
        await second.close()


async def test_not_ready_answers_503(start_server: Start) -> None:
    async with start_server(ready=False) as running:
        status, body, retry = await refused(
            running.url + LISTEN, {"Authorization": f"Token {KEY}"})
        assert (status, body["reason"], retry) == (503, "model loading", "1")
        code, ready = await http_get(running.http + "/readyz")
        assert (code, ready["status"]) == (503, "not ready")
        await running.recognizer.start()
        code, ready = await http_get(running.http + "/readyz")
        assert (code, ready["status"]) == (200, "ready")


async def http_get(url: str) -> tuple[int, dict[str, object]]:
    def fetch() -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    return await asyncio.to_thread(fetch)


async def test_health_and_unknown_paths(start_server: Start) -> None:
    async with start_server() as running:
        assert await http_get(running.http + "/healthz") == (
            200, {"type": "Status", "status": "ok"})
        code, body = await http_get(running.http + "/nowhere")
        assert (code, body["reason"]) == (404, "no such path: /nowhere")


def test_keys_come_from_the_environment() -> None:
    keys, dev_key = load_api_keys({"SPEECH_API_KEYS": " a1, b2 ,"})
    assert dev_key is None
    assert keys.verify("a1") and keys.verify("b2")
    assert not keys.verify("a") and not keys.verify("") and \
        not keys.verify(None)


def test_a_development_key_is_made_when_none_is_set() -> None:
    keys, dev_key = load_api_keys({})
    assert dev_key is not None and dev_key.startswith("dev-")
    assert keys.verify(dev_key)
    assert ApiKeys.of("x").verify("x")


class GatedHooks:
    """Hooks whose `admit` waits until the test lets it decide; the
    tracker they hand out counts how often it was ended."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.go = asyncio.Event()
        self.ended_count = 0

    async def admit(self, start: StreamStart) -> StreamTracker | Refusal:
        self.entered.set()
        await self.go.wait()
        return self

    async def audio(self, seconds: float) -> str | None:
        return None

    async def ended(self) -> None:
        self.ended_count += 1


UPGRADE = (
    f"GET {LISTEN} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    f"Sec-WebSocket-Version: 13\r\nAuthorization: Token {KEY}\r\n\r\n"
).encode()


async def until(condition: Callable[[], bool], timeout_s: float = 5.0
                ) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("reset", [False, True], ids=["FIN", "RST"])
async def test_a_client_gone_mid_handshake_frees_its_slot(
    start_server: Start, reset: bool,
) -> None:
    """The client sends the upgrade and leaves before the reply, as a
    closed browser tab does. websockets then calls no handler: the slot
    and the hooks' tracker must be released all the same, or one stream
    cap's worth of such clients locks everyone out."""
    hooks = GatedHooks()
    limits = ServerLimits(max_streams=1)
    async with start_server(limits=limits, hooks=hooks) as running:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", running.server.port)
        writer.write(UPGRADE)
        await asyncio.wait_for(hooks.entered.wait(), 5)
        if reset:
            writer.transport.abort()
        else:
            writer.close()
        await until(lambda: not running.server.admitted)
        hooks.go.set()  # the hooks admit the stream: too late
        await until(lambda: hooks.ended_count == 1)
        report = await stream(running.url, DIALECTS["deepgram"], KEY,
                              load_audio(audio_of("call_back")))
    assert report.transcript == reference("call_back")
    assert hooks.ended_count == 2  # and the real stream's, once


@pytest.mark.parametrize("path", [LISTEN, "/v3/ws?sample_rate=16000"])
async def test_a_repeated_authorization_header_is_a_bad_key(
    start_server: Start, path: str,
) -> None:
    """Client input, so a 4xx: HTTP joins repeated lines with commas,
    and no key has a comma in it."""
    scheme = "Token " if path == LISTEN else ""
    headers = [("Authorization", f"{scheme}{KEY}")] * 2
    async with start_server() as running:
        status, body, _ = await refused(running.url + path, headers)
    assert (status, body["reason"]) == (401, "invalid API key")


async def test_subprotocols_over_two_header_lines_are_one_list(
    start_server: Start,
) -> None:
    """A browser's `token, KEY` may come as two header lines; HTTP
    makes them one list, and the key is found."""
    request = UPGRADE.replace(
        f"Authorization: Token {KEY}\r\n".encode(),
        f"Sec-WebSocket-Protocol: token\r\n"
        f"Sec-WebSocket-Protocol: {KEY}\r\n".encode())
    async with start_server() as running:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", running.server.port)
        writer.write(request)
        async with asyncio.timeout(5):
            reply = await reader.readuntil(b"\r\n\r\n")
        writer.close()
    assert reply.startswith(b"HTTP/1.1 101")
    assert b"Sec-WebSocket-Protocol: token\r\n" in reply


async def test_one_key_cannot_take_every_stream_slot(
    start_server: Start,
) -> None:
    limits = ServerLimits(max_streams_per_key=2)
    headers = {"Authorization": f"Token {KEY}"}
    async with start_server(limits=limits, keys=(KEY, "other")) as running:
        url = running.url + LISTEN
        held = [await connect(url, additional_headers=headers)
                for _ in range(2)]
        status, body, retry = await refused(url, headers)
        other = await connect(url, additional_headers={
            "Authorization": "Token other"})
        await held[0].close()
        async with asyncio.timeout(5):  # its slot comes back
            while running.server.streams_per_key[KEY] > 1:
                await asyncio.sleep(0.01)
        again = await connect(url, additional_headers=headers)
        for socket in (*held, other, again):
            await socket.close()
    assert (status, retry) == (429, "1")
    assert body["reason"] == "this key has 2 streams open, its most"
