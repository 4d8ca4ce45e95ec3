"""The chapter 4 stop of the tour: a real service, two dialects, live.

Starts `python -m ch04_streaming` as its own process, waits for the cold
start to finish, streams the long conversation through the Deepgram and
the AssemblyAI dialect at once, at the pace of speech, prints each final
as it arrives, measures what the VAD saved, and stops the service with
SIGTERM, as an orchestrator would.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

from ch04_streaming import vad_savings
from ch04_streaming.client import DIALECTS, Report, Result, load_audio, stream
from ch04_streaming.vad import VadConfig
from examples.fixtures import AUDIO_DIR

REPO_ROOT = AUDIO_DIR.parent.parent
LONG = AUDIO_DIR / "support_call.wav"


async def start_service(key: str) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ch04_streaming", "--port", "0",
        cwd=REPO_ROOT, env={**os.environ, "SPEECH_API_KEYS": key},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    async with asyncio.timeout(30):
        line = (await process.stdout.readline()).decode()
    found = re.search(r"127\.0\.0\.1:(\d+)", line)
    if found is None:
        raise RuntimeError(f"service did not start: {line!r}")
    print(line.strip())
    return process, int(found.group(1))


async def wait_until_ready(port: int) -> None:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/readyz", timeout=2
            ) as response:
                return bool(json.loads(response.read())["status"] == "ready")
        except urllib.error.HTTPError:
            return False

    async with asyncio.timeout(30):
        while not await asyncio.to_thread(ready):
            print("  /readyz: 503, model loading ...", flush=True)
            await asyncio.sleep(0.5)
    print("  /readyz: 200, ready")


def printer(dialect: str) -> Callable[[Result], None]:
    def show(result: Result) -> None:
        if result.is_final and result.text:
            print(f"  [{dialect:<10}] {result.text}"
                  f"  ({result.latency_s * 1000:.0f} ms)", flush=True)

    return show


async def both_dialects(port: int, key: str) -> list[Report]:
    audio = load_audio(LONG)
    url = f"ws://127.0.0.1:{port}"
    return list(await asyncio.gather(*(
        stream(url, DIALECTS[name], key, audio, chunk_ms=100,
               realtime=True, on_result=printer(name))
        for name in ("deepgram", "assemblyai")
    )))


async def run() -> None:
    key = "demo-" + secrets.token_hex(8)
    process, port = await start_service(key)
    try:
        await wait_until_ready(port)
        print(f"\nStreaming {LONG.name} (44 s) through both dialects at"
              " the pace of speech; finals with their latency after the"
              " last word:\n", flush=True)
        reports = await both_dialects(port, key)
        for name, report in zip(("Deepgram", "AssemblyAI"), reports,
                                strict=True):
            print(f"\n{name}: closed {report.close_code}, "
                  f"{len(report.finals)} finals, first result "
                  f"{(report.first_result_s or 0) * 1000:.0f} ms after"
                  " the first word")
        saved = vad_savings.measure(LONG, VadConfig())
        print(f"VAD: {saved.share_passed:.0%} of {saved.audio_s:.1f} s"
              " reached the model; the rest never cost inference")
    finally:
        process.send_signal(signal.SIGTERM)
        code = await process.wait()
        print(f"service stopped on SIGTERM (exit {code})")


def streaming_service() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    streaming_service()
