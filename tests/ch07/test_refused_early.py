"""Refused before the body: a key or a size is judged on the headers.

Over a real socket, a client sends only the headers of an upload (with
`Expect: 100-continue`, and a `Content-Length` it never sends). Without
a valid key the server answers 401 with OpenAI's error and
`WWW-Authenticate: Bearer`; with a key but a length over the limit it
answers 413. Either way the answer comes at once, as the first thing on
the wire (no `100 Continue`: the server never asked for the body), and
the service then serves a real upload.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from ch04_streaming.auth import ApiKeys
from ch07_api.app import Parts, create_app
from tests.ch07.aip_harness import (
    AUTH,
    KEY,
    fast_settings,
    fixture_bytes,
    fixture_text,
)
from tests.ch07.fakes import live_server

ANSWERED_WITHIN_S = 5.0
LIMIT_MB = 1.0


async def headers_only(port: int, length: int, authorization: str | None
                       ) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Send an upload's headers and none of its body; the answer's
    status line, headers and JSON body."""
    head = ("POST /v1/audio/transcriptions HTTP/1.1\r\n"
            "Host: api\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {length}\r\n"
            "Expect: 100-continue\r\n")
    if authorization is not None:
        head += f"Authorization: {authorization}\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write((head + "\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(ANSWERED_WITHIN_S):
            raw = await reader.readuntil(b"\r\n\r\n")
            status, *lines = raw.decode("latin-1").strip().split("\r\n")
            assert " 100 " not in status, "the server asked for the body"
            headers = {name.lower(): value for name, value in
                       (line.split(": ", 1) for line in lines)}
            body = await reader.readexactly(int(headers["content-length"]))
    finally:
        writer.close()
        await writer.wait_closed()
    return status, headers, json.loads(body)


@pytest.mark.parametrize("authorization", [None, "Bearer wrong",
                                           f"Basic {KEY}"])
async def test_no_valid_key_is_401_before_the_body(
        tmp_path: Path, authorization: str | None) -> None:
    app = create_app(fast_settings(tmp_path, max_upload_mb=LIMIT_MB),
                     Parts(keys=ApiKeys.of(KEY)))
    async with live_server(app) as port:
        status, headers, body = await headers_only(port, 500_000,
                                                   authorization)
        assert status == "HTTP/1.1 401 Unauthorized"
        assert headers["www-authenticate"] == "Bearer"
        assert headers["content-type"] == "application/json"
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert (error["code"], error["type"], error["param"]) == (
            "invalid_api_key", "invalid_request_error", None)
        assert "Authorization: Bearer" in error["message"]


async def test_a_length_over_the_limit_is_413_before_the_body(
        tmp_path: Path) -> None:
    app = create_app(fast_settings(tmp_path, max_upload_mb=LIMIT_MB),
                     Parts(keys=ApiKeys.of(KEY)))
    async with live_server(app) as port:
        over = int(LIMIT_MB * 1024 * 1024) + 1
        status, _, body = await headers_only(port, over, f"Bearer {KEY}")
        assert status == "HTTP/1.1 413 Request Entity Too Large"
        assert (body["error"]["code"], body["error"]["param"]) == (
            "file_too_large", "file")
        assert "1,048,576 bytes" in body["error"]["message"]
        async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=AUTH,
                timeout=30) as client, asyncio.timeout(30):
            while (await client.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.01)
            fox = fixture_bytes("quick_brown_fox")
            good = await client.post(
                "/v1/audio/transcriptions", data={"model": "mock-asr"},
                files={"file": ("f.wav", fox, "audio/wav")})
            assert good.json()["text"] == fixture_text("quick_brown_fox")
