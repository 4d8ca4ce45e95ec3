"""`python -m ch07_api` as a process: it prints its port, serves OpenAI's
SDK, ends with status 0 on SIGTERM, and refuses bad flags by name.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openai

from examples.service import running_service, wait_until_ready
from tests.ch07.aip_harness import KEY, fixture_bytes, fixture_text


async def test_the_service_serves_the_sdk_and_stops_cleanly(
        tmp_path: Path) -> None:
    env = {"SPEECH_API_KEYS": KEY, "CH04_LOAD_S": "0",
           "CH04_WARMUP_S": "0",
           "CH07_DATABASE_URL": f"sqlite:///{tmp_path}/api.sqlite3"}
    async with running_service(("-m", "ch07_api", "--port", "0"),
                               env) as service:
        await wait_until_ready(service.port)
        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{service.port}/v1", api_key=KEY,
            max_retries=0)
        transcript = await client.audio.transcriptions.create(
            model="mock-asr",
            file=("fox.wav", fixture_bytes("quick_brown_fox")))
        assert transcript.text == fixture_text("quick_brown_fox")
        await client.close()
        service.process.terminate()
        assert await service.process.wait() == 0


def test_bad_flags_are_refused_by_name() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ch07_api", "--max-active", "0"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--max-active must be above 0" in done.stderr
