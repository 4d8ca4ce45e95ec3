"""The chapter 7 stop of the tour: one service, two API styles.

Starts `python -m ch07_api` as its own process, waits for `/readyz`,
streams the 44 s conversation through OpenAI's own Python SDK (each
delta printed as it arrives), then asks the AIP-styled route for the
same audio: over 30 s, so the answer is a long-running operation,
polled to completion with its progress, and stops the service with
SIGTERM.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import tempfile
import time
from typing import Any

import httpx
import openai

from examples.fixtures import load_manifest
from examples.service import running_service, wait_until_ready

POLL_S = 0.5
OPERATION_WITHIN_S = 60.0


async def stream_through_the_sdk(port: int, key: str, audio: bytes) -> None:
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1",
                                api_key=key)
    print("  OpenAI's SDK, stream=True (POST /v1/audio/transcriptions):")
    started = time.perf_counter()
    stream = await client.audio.transcriptions.create(
        model="mock-asr", file=("support_call.wav", audio), stream=True)
    async for event in stream:
        at = (time.perf_counter() - started) * 1000
        if event.type == "transcript.text.delta":
            print(f"    {at:6.0f} ms  delta  {event.delta.strip()}")
        else:
            print(f"    {at:6.0f} ms  {event.type}"
                  f" ({len(getattr(event, 'text', '').split())} words)")
    await client.close()


async def operation_polled(port: int, key: str, audio: bytes) -> None:
    print("\n  AIP-151: POST /v2/transcripts with 44 s of audio:")
    async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30,
            headers={"Authorization": f"Bearer {key}"}) as client:
        body = {"audio": {"content": base64.b64encode(audio).decode()},
                "model": "mock-asr"}
        operation: dict[str, Any] = (await client.post(
            "/v2/transcripts", json=body)).json()
        print(f"    -> {operation['name']} (done: {operation['done']})")
        async with asyncio.timeout(OPERATION_WITHIN_S):
            while not operation["done"]:
                await asyncio.sleep(POLL_S)
                operation = (await client.get(
                    f"/v2/{operation['name']}")).json()
                metadata = operation["metadata"]
                print(f"    GET /v2/{operation['name']}:"
                      f" {metadata['state']}"
                      f" {metadata['progress_percent']}%")
        if "error" in operation:
            raise RuntimeError(f"the operation failed: {operation}")
        transcript = operation["response"]
        print(f"    {transcript['name']}: {len(transcript['segments'])}"
              f" segments, {transcript['duration']} of audio:"
              f" \"{transcript['text'][:60]}...\"")


async def run() -> None:
    key = "demo-" + secrets.token_hex(8)
    audio = load_manifest().get("support_call").file().read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SPEECH_API_KEYS": key,
               "CH07_DATABASE_URL": f"sqlite:///{tmp}/tour.sqlite3"}
        async with running_service(("-m", "ch07_api", "--port", "0"),
                                   env) as service:
            print(f"API started: pid {service.pid}, port {service.port}")
            await wait_until_ready(service.port)
            await stream_through_the_sdk(service.port, key, audio)
            await operation_polled(service.port, key, audio)
    print("API stopped on SIGTERM; the routes, the error table and the"
          " versions: ch07_api/README.md")


def api_styles() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    api_styles()
