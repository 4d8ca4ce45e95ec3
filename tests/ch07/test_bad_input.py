"""Bad input to the OpenAI-compatible route: each gets its status and a
message that names the field, and the service goes on serving.

Empty and truncated files, wrong content types, bodies over the limit
(announced, and streamed without a length: cut off near the limit, not
read whole), unknown fields, bad values of `stream`, `response_format`,
`temperature`, `language` and `model`.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ch07.aip_harness import (
    fast_settings,
    fixture_bytes,
    fixture_text,
    serving,
)

URL = "/v1/audio/transcriptions"
FOX = fixture_bytes("quick_brown_fox")
LIMIT_MB = 1.0


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = fast_settings(tmp_path, max_upload_mb=LIMIT_MB)
    async with serving(settings) as made:
        yield made


async def refused(client: httpx.AsyncClient, status: int, code: str,
                  param: str | None, **request: Any) -> str:
    answer = await client.post(URL, **request)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    # and the next good request is served
    good = await client.post(URL, data={"model": "mock-asr"},
                             files={"file": ("f.wav", FOX, "audio/wav")})
    assert good.json()["text"] == fixture_text("quick_brown_fox")
    message: str = error["message"]
    return message


def form(**fields: str) -> dict[str, Any]:
    return {"data": {"model": "mock-asr", **fields},
            "files": {"file": ("f.wav", FOX, "audio/wav")}}


async def test_empty_and_truncated_files(client: httpx.AsyncClient) -> None:
    empty = await refused(client, 400, "invalid_audio", "file",
                          data={"model": "mock-asr"},
                          files={"file": ("f.wav", b"", "audio/wav")})
    assert "empty" in empty
    header = await refused(client, 400, "invalid_audio", "file",
                           data={"model": "mock-asr"},
                           files={"file": ("f.wav", FOX[:30],
                                           "audio/wav")})
    assert "WAV" in header  # the decoder's own reason


async def test_wrong_content_types(client: httpx.AsyncClient) -> None:
    await refused(client, 415, "unsupported_media_type", None,
                  json={"model": "mock-asr"})
    text = await refused(client, 415, "unsupported_media_type", "file",
                         data={"model": "mock-asr"},
                         files={"file": ("f.txt", b"hi", "text/plain")})
    assert "text/plain" in text


async def test_an_announced_body_over_the_limit(
        client: httpx.AsyncClient) -> None:
    big = b"\0" * int(LIMIT_MB * 1024 * 1024 + 1)
    await refused(client, 413, "file_too_large", "file",
                  data={"model": "mock-asr"},
                  files={"file": ("f.wav", big, "audio/wav")})


async def test_a_streamed_body_is_cut_off_at_the_limit(
        client: httpx.AsyncClient) -> None:
    chunk = 64 * 1024
    sent = 0
    boundary = b"b0undary"

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield (b"--" + boundary + b"\r\nContent-Disposition: form-data;"
               b' name="file"; filename="f.wav"\r\n'
               b"Content-Type: audio/wav\r\n\r\n")
        for _ in range(64):  # 4 MiB, with no Content-Length
            sent += chunk
            yield b"\0" * chunk

    answer = await client.post(
        URL, content=body(),
        headers={"Content-Type": "multipart/form-data; boundary="
                 + boundary.decode()})
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "file_too_large"
    # The server stopped reading about where the limit is.
    assert sent <= LIMIT_MB * 1024 * 1024 + 2 * chunk


async def test_unknown_fields_and_bad_values(
        client: httpx.AsyncClient) -> None:
    unknown = await refused(client, 400, "invalid_value", "speed",
                            **form(speed="2"))
    assert "speed" in unknown
    maybe = await refused(client, 400, "invalid_value", "stream",
                          **form(stream="maybe"))
    assert "maybe" in maybe
    await refused(client, 400, "invalid_value", "response_format",
                  **form(response_format="srt"))
    await refused(client, 400, "invalid_value", "temperature",
                  **form(temperature="1.5"))
    await refused(client, 400, "invalid_value", "temperature",
                  **form(temperature="warm"))
    await refused(client, 400, "invalid_value", "language",
                  **form(language="fr"))
    await refused(client, 404, "model_not_found", "model",
                  **form(model="whisper-9"))
    await refused(client, 400, "invalid_value", "model",
                  data={}, files={"file": ("f.wav", FOX, "audio/wav")})
    # parts without a file name are text fields
    await refused(client, 400, "invalid_value", "file",
                  files={"model": (None, "mock-asr")})
    await refused(client, 400, "invalid_value", "file",
                  files={"model": (None, "mock-asr"),
                         "file": (None, "not a file")})


async def test_booleans_in_any_case(client: httpx.AsyncClient) -> None:
    for value in ("TRUE", "True", "1"):
        answer = await client.post(URL, **form(stream=value))
        assert answer.headers["content-type"].startswith(
            "text/event-stream")
    answer = await client.post(URL, **form(stream="False"))
    assert answer.json()["text"] == fixture_text("quick_brown_fox")


async def test_a_malformed_multipart_body(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        URL, content=io.BytesIO(b"--x\r\nnot a part").read(),
        headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"
