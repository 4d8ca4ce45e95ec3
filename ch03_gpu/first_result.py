"""The lab's client: when does a service answer its first stream?

Chapter 3, "Cold start anatomy". A cold start ends for a user at the
first transcript, not when the process is up. This client polls
`/readyz` and streams a recording to a speech service in the Deepgram
dialect (any service that speaks it), as fast as the service takes it,
and dates the first `Results` message with words in it. It knows the
wire protocol only, not the service's code, so chapter 3 can time
chapter 4 from outside, as a load balancer or a user would.
"""

from __future__ import annotations

import asyncio
import json
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from websockets.asyncio.client import connect

CHUNK_MS = 100


@dataclass(frozen=True)
class Pcm:
    """16-bit mono PCM, as it goes on the wire."""

    payload: bytes
    sample_rate: int


@dataclass(frozen=True)
class StreamOutcome:
    connected_at: float  # time.monotonic(): the upgrade answered
    first_result_at: float  # the first result with words in it
    transcript: str  # the finals, joined


def read_wav(path: Path) -> Pcm:
    with wave.open(str(path), "rb") as recording:
        if recording.getnchannels() != 1 or recording.getsampwidth() != 2:
            raise ValueError(f"{path}: need mono 16-bit PCM")
        return Pcm(recording.readframes(recording.getnframes()),
                   recording.getframerate())


async def http_status(port: int, path: str, timeout_s: float = 5.0) -> int:
    """The status of `GET path` on 127.0.0.1:`port`; 0 if refused."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection("127.0.0.1",
                                                           port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Connection: close\r\n\r\n".encode())
            status_line = await reader.readline()
            writer.close()
    except (OSError, TimeoutError):
        return 0
    parts = status_line.split()
    return int(parts[1]) if len(parts) > 1 else 0


async def wait_until_ready(port: int, timeout_s: float = 60.0,
                           poll_s: float = 0.01) -> float:
    """Poll `/readyz` until it answers 200; return when it did. Polled
    every 10 ms: the poll's own granularity is part of what is timed."""
    async with asyncio.timeout(timeout_s):
        while await http_status(port, "/readyz") != 200:
            await asyncio.sleep(poll_s)
    return time.monotonic()


async def stream_until_first_result(port: int, key: str, pcm: Pcm,
                                    timeout_s: float = 30.0
                                    ) -> StreamOutcome:
    """Stream `pcm` and read every message until the service closes."""
    query = urlencode({"encoding": "linear16",
                       "sample_rate": pcm.sample_rate})
    url = f"ws://127.0.0.1:{port}/v1/listen?{query}"
    chunk = pcm.sample_rate * 2 * CHUNK_MS // 1000
    first_at: float | None = None
    finals: list[str] = []
    async with asyncio.timeout(timeout_s), connect(
            url, additional_headers={"Authorization": f"Token {key}"},
    ) as socket:
        connected_at = time.monotonic()

        async def send() -> None:
            for start in range(0, len(pcm.payload), chunk):
                await socket.send(pcm.payload[start:start + chunk])
            await socket.send(json.dumps({"type": "CloseStream"}))

        sender = asyncio.create_task(send())
        async for raw in socket:
            message = json.loads(raw)
            if message.get("type") != "Results":
                continue
            text = message["channel"]["alternatives"][0]["transcript"]
            if text and first_at is None:
                first_at = time.monotonic()
            if text and message["is_final"]:
                finals.append(text)
        await sender
    if first_at is None:
        raise RuntimeError("the stream ended without a result with words")
    return StreamOutcome(connected_at, first_at, " ".join(finals))
