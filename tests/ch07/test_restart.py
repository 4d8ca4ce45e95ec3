"""Operations across a process's end: a crash (kill -9) and a SIGTERM.

The service runs as a real subprocess on a database file. Finished
transcripts survive it; an operation it was running is, at the next
start (after a crash) or at shutdown (after SIGTERM), failed with
ABORTED rather than left "running" for ever.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from examples.service import Service, running_service, wait_until_ready
from tests.ch07.aip_harness import AUTH, KEY, audio_body, fixture_text

ABORTED = 10  # google.rpc.Code


def service_env(tmp_path: Path) -> dict[str, str]:
    return {"SPEECH_API_KEYS": KEY, "CH04_LOAD_S": "0",
            "CH04_WARMUP_S": "0",
            "CH07_DATABASE_URL": f"sqlite:///{tmp_path}/api.sqlite3",
            "CH07_LRO_SPEED": "1"}  # the 44 s call runs for 44 s


@asynccontextmanager
async def api(tmp_path: Path) -> AsyncIterator[tuple[Service,
                                                     httpx.AsyncClient]]:
    async with running_service(("-m", "ch07_api", "--port", "0"),
                               service_env(tmp_path),
                               own_group=True) as service:
        await wait_until_ready(service.port)
        async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{service.port}",
                headers=AUTH, timeout=30) as client:
            yield service, client


async def start_work(client: httpx.AsyncClient) -> tuple[str, str]:
    done = await client.post("/v1/transcripts",
                             json=audio_body("quick_brown_fox"))
    running = await client.post("/v1/transcripts",
                                json=audio_body("support_call"))
    assert running.json()["done"] is False
    return done.json()["name"], running.json()["name"]


async def read(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/{name}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_a_crash_loses_no_finished_work_and_strands_nothing(
        tmp_path: Path) -> None:
    async with api(tmp_path) as (service, client):
        transcript, operation = await start_work(client)
        os.killpg(service.pid, signal.SIGKILL)  # the matcher worker too
        async with asyncio.timeout(10):
            await service.process.wait()
    async with api(tmp_path) as (_, client):
        assert (await read(client, transcript))["text"] == fixture_text(
            "quick_brown_fox")
        after = await read(client, operation)
        assert after["done"] is True
        assert after["metadata"]["state"] == "FAILED"
        assert after["error"]["code"] == ABORTED
        assert "retry" in after["error"]["message"]


async def test_sigterm_marks_running_work_aborted_and_exits_cleanly(
        tmp_path: Path) -> None:
    async with api(tmp_path) as (service, client):
        _, operation = await start_work(client)
        service.process.terminate()
        async with asyncio.timeout(20):
            assert await service.process.wait() == 0
    async with api(tmp_path) as (_, client):
        after = await read(client, operation)
        assert after["metadata"]["state"] == "FAILED"
        assert after["error"]["code"] == ABORTED
