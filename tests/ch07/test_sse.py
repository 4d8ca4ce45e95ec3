"""SSE done right, over a real socket: headers, keep-alives when the
engine is quiet, a disconnect that leaves no work behind, and a failure
mid-stream that OpenAI's SDK raises.

The engine is steered (`fakes.SteeredRecognizer`): a test holds its
decodes at a gate, or makes one final fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import openai
import pytest

from ch04_streaming.auth import ApiKeys
from ch04_streaming.session import StreamSession
from ch07_api.app import Parts, create_app
from ch07_api.service import SpeechApi
from ch07_api.settings import ApiSettings
from tests.ch07.aip_harness import AUTH, KEY, fast_settings, fixture_bytes
from tests.ch07.fakes import SteeredRecognizer, live_server

BOUND_S = 20.0


@asynccontextmanager
async def steered(settings: ApiSettings, engine: SteeredRecognizer
                  ) -> AsyncIterator[tuple[httpx.AsyncClient, SpeechApi]]:
    app = create_app(settings, Parts(keys=ApiKeys.of(KEY),
                                     models={"full": engine,
                                             "cheaper": engine}))
    async with live_server(app) as port, httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=AUTH,
            timeout=BOUND_S) as client:
        yield client, app.state.api


CALL = {"file": ("call.wav", fixture_bytes("support_call"), "audio/wav")}
STREAM = {"model": "mock-asr", "stream": "true"}


def sessions_running() -> int:
    """Decode loops of sessions still alive, in this event loop."""
    return sum(1 for task in asyncio.all_tasks()
               if getattr(task.get_coro(), "__qualname__", "")
               == StreamSession.run.__qualname__)


async def test_idle_streams_get_keep_alives_and_the_right_headers(
        tmp_path: Path) -> None:
    gate = asyncio.Event()
    engine = SteeredRecognizer(gate=gate)
    settings = fast_settings(tmp_path, keepalive_s=0.05)
    async with steered(settings, engine) as (client, _), \
            asyncio.timeout(BOUND_S), client.stream(
                "POST", "/v1/audio/transcriptions", data=STREAM, files=CALL
            ) as answer:
            assert answer.headers["content-type"].startswith(
                "text/event-stream")
            assert answer.headers["cache-control"] == "no-cache"
            assert answer.headers["x-accel-buffering"] == "no"
            lines = answer.aiter_lines()
            keepalives = 0
            while keepalives < 3:  # the engine is held: nothing else
                line = await anext(lines)
                assert line in (": keep-alive", ""), line
                keepalives += line == ": keep-alive"
            assert engine.finals == 0
            gate.set()
            rest = [line async for line in lines]
            assert any("transcript.text.done" in line for line in rest)


async def test_a_client_that_leaves_has_its_inference_cancelled(
        tmp_path: Path) -> None:
    gate = asyncio.Event()
    engine = SteeredRecognizer(gate=gate)
    async with steered(fast_settings(tmp_path), engine) as (client, api):
        async with asyncio.timeout(BOUND_S):
            async with client.stream("POST", "/v1/audio/transcriptions",
                                     data=STREAM, files=CALL):
                await engine.decoding.wait()  # inference is under way
                assert sessions_running() == 1
            # The response is closed: the client has gone.
            while sessions_running() or api.admission.active:
                await asyncio.sleep(0.01)
            assert api.metrics.active._value.get() == 0
            assert api.metrics.client_gone._value.get() == 1
            decodes = engine.decodes
            gate.set()  # the decode in flight ends; nothing follows it
            while engine.waiting:
                await asyncio.sleep(0.01)
            assert engine.decodes == decodes
            # and the service serves the next client
            answer = await client.post("/v1/audio/transcriptions",
                                       data={"model": "mock-asr"},
                                       files=CALL)
            assert answer.status_code == 200
            assert answer.json()["text"].startswith("word")


async def test_a_failure_mid_stream_is_raised_by_the_sdk(
        tmp_path: Path) -> None:
    engine = SteeredRecognizer(fail_final=2)
    async with steered(fast_settings(tmp_path), engine) as (client, _):
        sdk = openai.AsyncOpenAI(base_url=f"{client.base_url}/v1",
                                 api_key=KEY, max_retries=0)
        events = []
        with pytest.raises(openai.APIError) as raised:
            stream = await sdk.audio.transcriptions.create(
                model="mock-asr", stream=True,
                file=("call.wav", fixture_bytes("support_call")))
            async for event in stream:
                events.append(event)
        assert [e.type for e in events] == ["transcript.text.delta"]
        assert raised.value.body is not None
        assert isinstance(raised.value.body, dict)
        assert raised.value.body["code"] == "server_unavailable"
        await sdk.close()
