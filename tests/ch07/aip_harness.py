"""The chapter 7 service in-process, for the AIP routes' tests.

Builds the app with a fast engine (no load time, the mock's matcher on
the event loop), a database in the test's directory, and one API key;
runs its lifespan, waits (bounded) for `/readyz`, and hands over an
httpx client on the ASGI transport, authorised.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai

from ch04_streaming.auth import ApiKeys
from ch04_streaming.settings import Settings
from ch06_pipeline.settings import PipelineSettings
from ch07_api.app import Parts, create_app
from ch07_api.settings import ApiSettings
from examples.fixtures import load_manifest

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
FAST_SPEECH = replace(Settings(), load_s=0.0, warmup_s=0.0,
                      warmup_decodes=0, matcher_runs_on="loop",
                      lexicon_cache="")
READY_WITHIN_S = 30.0


def fast_settings(tmp_path: Path, **changes: Any) -> ApiSettings:
    pipeline = replace(PipelineSettings(), speech=FAST_SPEECH)
    return replace(ApiSettings(), pipeline=pipeline,
                   database_url=f"sqlite:///{tmp_path}/api.sqlite3",
                   **changes)


def fixture_bytes(fixture_id: str) -> bytes:
    return load_manifest().get(fixture_id).file().read_bytes()


def fixture_text(fixture_id: str) -> str:
    return " ".join(w.word for w in load_manifest().get(fixture_id).words)


def audio_body(fixture_id: str, **fields: Any) -> dict[str, Any]:
    content = base64.b64encode(fixture_bytes(fixture_id)).decode()
    return {"audio": {"content": content}, **fields}


@asynccontextmanager
async def serving_both(settings: ApiSettings, parts: Parts | None = None,
                       wait_ready: bool = True
                       ) -> AsyncIterator[tuple[httpx.AsyncClient,
                                                openai.AsyncOpenAI]]:
    """An httpx client and OpenAI's SDK, both on the app in-process
    (the SDK on httpx2, the HTTP stack it is built on)."""
    app = create_app(settings, parts or Parts(keys=ApiKeys.of(KEY)))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api",
            headers=AUTH, timeout=30) as client, httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app)) as sdk_http:
        async with asyncio.timeout(READY_WITHIN_S):
            while wait_ready and (
                    await client.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.01)
        yield client, openai.AsyncOpenAI(
            base_url="http://api/v1", api_key=KEY, http_client=sdk_http,
            max_retries=0)


@asynccontextmanager
async def serving(settings: ApiSettings, parts: Parts | None = None
                  ) -> AsyncIterator[httpx.AsyncClient]:
    async with serving_both(settings, parts) as (client, _):
        yield client


async def until_done(client: httpx.AsyncClient, name: str,
                     version: str = "v1", within_s: float = 30.0
                     ) -> list[dict[str, Any]]:
    """Poll an operation until it is done; every answer, in order."""
    seen = []
    async with asyncio.timeout(within_s):
        while True:
            answer = await client.get(f"/{version}/{name}")
            assert answer.status_code == 200, answer.text
            seen.append(answer.json())
            if seen[-1]["done"]:
                return seen
            await asyncio.sleep(0.05)
