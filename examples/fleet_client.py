"""A stream to chapter 12's fleet, as its tour and tests drive one.

Chapter 12. Opens a Deepgram-dialect stream of 16 kHz PCM through the
Serve proxy (or straight to a pipeline), sends a fixture paced as a
microphone, collects the finals until the server closes, and reads
which replica, in which region, took the stream from the answer's
`x-replica` and `x-region` headers.
"""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import ClientConnection, connect

from ch04_streaming.client import load_audio
from examples.fixtures import AUDIO_DIR

LISTEN = "/v1/listen?encoding=linear16&sample_rate=16000"
CHUNK = 3200  # 100 ms of 16 kHz PCM
CLOSE_STREAM = json.dumps({"type": "CloseStream"})


def open_stream(url: str, key: str) -> connect:
    """`async with open_stream(url, key) as socket:`, or awaited."""
    return connect(f"{url}{LISTEN}&interim_results=false",
                   additional_headers={"Authorization": f"Token {key}"})


async def send_paced(socket: ClientConnection, fixture: str) -> None:
    payload = load_audio(AUDIO_DIR / f"{fixture}.wav").payload
    for start in range(0, len(payload), CHUNK):
        await socket.send(payload[start:start + CHUNK])
        await asyncio.sleep(0.1)  # a microphone has it once it is over
    await socket.send(CLOSE_STREAM)


async def finals_until_close(socket: ClientConnection) -> list[str]:
    said = []
    async for raw in socket:
        message = json.loads(raw)
        if message.get("type") == "Results" and message["is_final"]:
            text = message["channel"]["alternatives"][0]["transcript"]
            if text:
                said.append(text)
    return said


def replica_of(socket: ClientConnection) -> str:
    assert socket.response is not None
    return socket.response.headers["x-replica"]


def region_of(socket: ClientConnection) -> str:
    assert socket.response is not None
    return socket.response.headers["x-region"]
