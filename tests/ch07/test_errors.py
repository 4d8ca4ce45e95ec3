"""Every ML-specific failure, end to end, as the error table says.

Each failure is made to happen for real: a model still loading, a
device whose memory cannot hold the batch (chapter 3's device model
raises), a decode held past the deadline, a full admission queue. The
answer has the table's status and code in OpenAI's shape, `Retry-After`
where retrying helps, and OpenAI's SDK raises its matching exception.
A missing key is refused before one byte of the body is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ch03_gpu.device import Accelerator, CostModel
from ch03_gpu.memory import DeviceMemory
from ch04_streaming.auth import ApiKeys
from ch04_streaming.engine import (
    LocalMatching,
    MockRecognizer,
    Recognizer,
    load_lexicon,
)
from ch07_api.app import Parts, create_app
from ch07_api.errors import ERRORS, ApiError
from ch07_api.settings import ApiSettings
from examples.fixtures import MANIFEST_PATH
from tests.ch07.aip_harness import (
    KEY,
    fast_settings,
    fixture_bytes,
    serving_both,
)
from tests.ch07.fakes import SteeredRecognizer

FOX = ("fox.wav", fixture_bytes("quick_brown_fox"), "audio/wav")
BOUND_S = 20.0
Clients = tuple[httpx.AsyncClient, openai.AsyncOpenAI]


def api(settings: ApiSettings, engine: Recognizer,
        wait_ready: bool = True) -> AbstractAsyncContextManager[Clients]:
    parts = Parts(keys=ApiKeys.of(KEY), models={"full": engine,
                                                "cheaper": engine})
    return serving_both(settings, parts, wait_ready)


async def transcribe(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/v1/audio/transcriptions",
                             data={"model": "mock-asr"},
                             files={"file": FOX})


def openai_error(answer: httpx.Response, status: int, code: str
                 ) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == code and error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    mapping = next(m for m in ERRORS.values() if m.code == code)
    assert error["type"] == mapping.openai_type
    retry = mapping.retry_after_s
    assert answer.headers.get("retry-after") == (
        str(retry) if retry else None)
    if retry:
        assert answer.headers["retry-after-ms"] == str(retry * 1000)
    return error


async def test_a_model_still_loading_is_503_with_retry_after(
        tmp_path: Path) -> None:
    engine = SteeredRecognizer(ready=False)
    async with api(fast_settings(tmp_path), engine, wait_ready=False
                   ) as (client, sdk):
        openai_error(await transcribe(client), 503, "model_not_ready")
        assert (await client.get("/readyz")).status_code == 503
        with pytest.raises(openai.InternalServerError):
            await sdk.audio.transcriptions.create(model="mock-asr",
                                                  file=FOX)
        engine.ready = True
        assert (await transcribe(client)).status_code == 200


async def test_accelerator_out_of_memory_is_503_with_its_own_code(
        tmp_path: Path) -> None:
    # A device model with room for no batch at all: chapter 3's
    # `check_fits` refuses every decode before it starts.
    device = Accelerator(CostModel(1.0, 0.05),
                         memory=DeviceMemory(1024.0),
                         activation_bytes_per_audio_s=1e6)
    engine = MockRecognizer(LocalMatching(load_lexicon(MANIFEST_PATH)),
                            device)
    async with api(fast_settings(tmp_path), engine) as (client, _):
        error = openai_error(await transcribe(client), 503,
                             "accelerator_out_of_memory")
        assert "memory" in error["message"]


async def test_inference_past_its_deadline_is_504(tmp_path: Path) -> None:
    gate = asyncio.Event()  # opened only when the test is over
    engine = SteeredRecognizer(gate=gate)
    settings = fast_settings(tmp_path, timeout_s=0.2,
                             timeout_per_audio_s=0.0)
    async with api(settings, engine) as (client, sdk):
        openai_error(await transcribe(client), 504, "inference_timeout")
        with pytest.raises(openai.APIStatusError) as raised:
            await sdk.audio.transcriptions.create(model="mock-asr",
                                                  file=FOX)
        assert raised.value.status_code == 504
        gate.set()  # else the pipeline's close waits out its grace


async def test_a_full_queue_is_429_with_retry_after(tmp_path: Path) -> None:
    gate = asyncio.Event()
    engine = SteeredRecognizer(gate=gate)
    settings = fast_settings(tmp_path, max_active=1, max_waiting=0)
    async with api(settings, engine) as (client, sdk):
        held = asyncio.create_task(transcribe(client))
        async with asyncio.timeout(BOUND_S):
            await engine.decoding.wait()
        openai_error(await transcribe(client), 429, "queue_full")
        with pytest.raises(openai.RateLimitError):
            await sdk.audio.transcriptions.create(model="mock-asr",
                                                  file=FOX)
        gate.set()
        async with asyncio.timeout(BOUND_S):
            assert (await held).status_code == 200
        assert (await transcribe(client)).status_code == 200


async def test_client_errors_raise_the_sdks_own_exceptions(
        tmp_path: Path) -> None:
    engine = SteeredRecognizer()
    async with api(fast_settings(tmp_path), engine) as (_, sdk):
        with pytest.raises(openai.NotFoundError) as missing:
            await sdk.audio.transcriptions.create(model="nope", file=FOX)
        assert missing.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as unreadable:
            await sdk.audio.transcriptions.create(
                model="mock-asr", file=("x.wav", b"RIFF....WAVEnope"))
        assert unreadable.value.code == "invalid_audio"
        assert unreadable.value.param == "file"
        wrong = sdk.with_options(api_key="wrong")
        with pytest.raises(openai.AuthenticationError):
            await wrong.audio.transcriptions.create(model="mock-asr",
                                                    file=FOX)


async def test_a_wrong_key_is_refused_before_the_body_is_read(
        tmp_path: Path) -> None:
    app = create_app(fast_settings(tmp_path),
                     Parts(keys=ApiKeys.of(KEY),
                           models={"full": SteeredRecognizer()}))
    reads = 0
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 1024,
                "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    for header in ([], [(b"authorization", b"Bearer wrong")]):
        sent.clear()
        scope = {"type": "http", "method": "POST", "scheme": "http",
                 "path": "/v1/audio/transcriptions", "raw_path": b"",
                 "query_string": b"", "root_path": "",
                 "headers": [(b"content-type", b"multipart/form-data;"
                              b" boundary=x"), *header],
                 "client": ("127.0.0.1", 1), "server": ("api", 80),
                 "asgi": {"version": "3.0"}, "http_version": "1.1"}
        await app(scope, receive, send)
        assert sent[0]["status"] == 401
        headers = dict(sent[0]["headers"])
        assert headers[b"www-authenticate"] == b"Bearer"
        assert b"invalid_api_key" in sent[1]["body"]
    assert reads == 0


def test_every_error_class_has_one_row() -> None:
    assert all(issubclass(kind, ApiError) for kind in ERRORS)
    codes = [m.code for m in ERRORS.values()]
    assert len(codes) == len(set(codes))
