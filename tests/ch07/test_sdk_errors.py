"""Every status of the error table, as OpenAI's SDK sees it.

Each refusal the OpenAI-compatible route can give is provoked through
`AsyncOpenAI` (no retries), and the SDK raises exactly the exception
class it keeps for that status (`BadRequestError` for 400, ...,
`InternalServerError` for 5xx, plain `APIStatusError` for 413 and 415),
carrying the table's code, OpenAI's error type, the field at fault, and
`Retry-After` with `retry-after-ms` exactly where the table says
retrying helps. A streamed request refused by a full admission queue is
a 429 before its stream starts, so the SDK raises `RateLimitError`, as
for a request that does not stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from ch03_gpu.device import Accelerator, CostModel
from ch03_gpu.memory import DeviceMemory
from ch04_streaming.auth import ApiKeys
from ch04_streaming.engine import LocalMatching, MockRecognizer, load_lexicon
from ch07_api.app import Parts
from ch07_api.errors import ERRORS, ErrorMapping
from examples.fixtures import MANIFEST_PATH
from tests.ch07.aip_harness import (
    KEY,
    fast_settings,
    fixture_bytes,
    fixture_text,
    serving_both,
)
from tests.ch07.fakes import SteeredRecognizer

FOX = ("fox.wav", fixture_bytes("quick_brown_fox"), "audio/wav")
BOUND_S = 20.0
# The exception OpenAI's SDK raises for each status; exactly this class.
SDK_CLASSES: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    404: openai.NotFoundError,
    413: openai.APIStatusError,
    415: openai.APIStatusError,
    429: openai.RateLimitError,
    503: openai.InternalServerError,
    504: openai.InternalServerError,
}


def row(code: str) -> ErrorMapping:
    [mapping] = [m for m in ERRORS.values() if m.code == code]
    return mapping


def check(raised: pytest.ExceptionInfo[openai.APIStatusError], code: str,
          param: str | None) -> str:
    """The SDK's exception is the table's row; its message returned."""
    mapping = row(code)
    error = raised.value
    assert type(error) is SDK_CLASSES[mapping.status], type(error)
    assert error.status_code == mapping.status
    assert (error.code, error.param, error.type) == (
        code, param, mapping.openai_type)
    headers = error.response.headers
    if mapping.retry_after_s is None:
        assert "retry-after" not in headers
        assert "retry-after-ms" not in headers
    else:
        assert headers["retry-after"] == str(mapping.retry_after_s)
        assert headers["retry-after-ms"] == str(
            mapping.retry_after_s * 1000)
    assert isinstance(error.body, dict)
    assert set(error.body) == {"message", "type", "param", "code"}
    message: str = error.body["message"]
    assert message
    return message


@pytest.fixture
async def sdk(tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    settings = fast_settings(tmp_path, max_upload_mb=0.25, max_audio_s=5.0)
    async with serving_both(settings) as (_, client):
        yield client


async def test_client_errors(sdk: openai.AsyncOpenAI) -> None:
    create = sdk.audio.transcriptions.create
    short = ("f.wav", fixture_bytes("low_latency"), "audio/wav")  # 4.7 s
    with pytest.raises(openai.APIStatusError) as bad_audio:
        await create(model="mock-asr",
                     file=("f.wav", b"RIFF\0\0", "audio/wav"))
    assert "decode" in check(bad_audio, "invalid_audio", "file")
    with pytest.raises(openai.APIStatusError) as unknown:
        await create(model="mock-asr", file=short,
                     extra_body={"speed": "2"})
    assert "speed" in check(unknown, "invalid_value", "speed")
    with pytest.raises(openai.APIStatusError) as no_model:
        await create(model="whisper-9", file=short)
    assert "whisper-9" in check(no_model, "model_not_found", "model")
    with pytest.raises(openai.APIStatusError) as too_big:
        await create(model="mock-asr",
                     file=("f.wav", b"\0" * 300_000, "audio/wav"))
    check(too_big, "file_too_large", "file")
    with pytest.raises(openai.APIStatusError) as too_long:
        await create(model="mock-asr", file=FOX)  # 5.6 s, limit 5 s
    assert "5.6 s of audio" in check(too_long, "file_too_large", "file")
    with pytest.raises(openai.APIStatusError) as text:
        await create(model="mock-asr", file=("f.txt", b"hi", "text/plain"))
    assert "text/plain" in check(text, "unsupported_media_type", "file")
    with pytest.raises(openai.APIStatusError) as no_key:
        await sdk.with_options(api_key="wrong").audio.transcriptions.create(
            model="mock-asr", file=short)
    check(no_key, "invalid_api_key", None)
    # and the service still serves
    done = await create(model="mock-asr", file=short)
    assert done.text == fixture_text("low_latency")


async def test_accelerator_out_of_memory(tmp_path: Path) -> None:
    device = Accelerator(CostModel(1.0, 0.05), memory=DeviceMemory(1024.0),
                         activation_bytes_per_audio_s=1e6)
    engine = MockRecognizer(LocalMatching(load_lexicon(MANIFEST_PATH)),
                            device)
    parts = Parts(keys=ApiKeys.of(KEY),
                  models={"full": engine, "cheaper": engine})
    async with serving_both(fast_settings(tmp_path), parts) as (_, sdk):
        with pytest.raises(openai.APIStatusError) as raised:
            await sdk.audio.transcriptions.create(model="mock-asr",
                                                  file=FOX)
        assert "memory" in check(raised, "accelerator_out_of_memory",
                                 None)


async def test_a_model_loading_and_inference_too_slow(
        tmp_path: Path) -> None:
    gate = asyncio.Event()
    engine = SteeredRecognizer(ready=False, gate=gate)
    parts = Parts(keys=ApiKeys.of(KEY),
                  models={"full": engine, "cheaper": engine})
    settings = fast_settings(tmp_path, timeout_s=0.2,
                             timeout_per_audio_s=0.0)
    async with serving_both(settings, parts, wait_ready=False) as (_, sdk):
        with pytest.raises(openai.APIStatusError) as loading:
            await sdk.audio.transcriptions.create(model="mock-asr",
                                                  file=FOX)
        check(loading, "model_not_ready", None)
        engine.ready = True
        with pytest.raises(openai.APIStatusError) as slow:
            await sdk.audio.transcriptions.create(model="mock-asr",
                                                  file=FOX)
        assert "0.2 s" in check(slow, "inference_timeout", None)
        gate.set()  # the held decode ends: the service stops at once


@pytest.mark.parametrize("stream", [False, True])
async def test_a_full_queue_refuses_before_any_stream_starts(
        tmp_path: Path, stream: bool) -> None:
    gate = asyncio.Event()
    engine = SteeredRecognizer(gate=gate)
    parts = Parts(keys=ApiKeys.of(KEY),
                  models={"full": engine, "cheaper": engine})
    settings = fast_settings(tmp_path, max_active=1, max_waiting=0)
    async with serving_both(settings, parts) as (_, sdk), \
            asyncio.timeout(BOUND_S):
        held = asyncio.create_task(sdk.audio.transcriptions.create(
            model="mock-asr", file=FOX))
        await engine.decoding.wait()  # the one slot is taken
        with pytest.raises(openai.APIStatusError) as full:
            await sdk.audio.transcriptions.create(
                model="mock-asr", file=FOX, stream=stream)
        check(full, "queue_full", None)
        gate.set()
        assert (await held).text.startswith("word")
        # with the slot free again, the same request is served
        if stream:
            events = [e async for e in await sdk.audio.transcriptions
                      .create(model="mock-asr", file=FOX, stream=True)]
            assert events[-1].type == "transcript.text.done"
        else:
            done = await sdk.audio.transcriptions.create(
                model="mock-asr", file=FOX)
            assert done.text.startswith("word")
