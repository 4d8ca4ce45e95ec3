"""Containerized audio over the Deepgram dialect, end to end.

Chapter 4, "Audio fundamentals for serving engineers". Ogg/Opus, FLAC
and MediaRecorder's WebM/Opus are streamed in slices of 20 to 250 ms to
`/v1/listen` with no `encoding` (Deepgram's rule for containers) or with
the encoding that names them, and must come back as the fixture's
reference text, billed and summed up in decoded seconds, while the
`Metadata` hash stays that of the bytes sent. Bad container bytes close
the stream with its reason, and no decoder thread outlives its stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.client import ClientConnection, connect

from ch04_streaming.stream_hooks import StreamStart, StreamTracker
from tests.ch04.harness import KEY, MANIFEST, Start, reference
from tests.ch04.media import (
    FLAC_FIXTURE,
    OPUS_FIXTURE,
    fixture_bytes,
    slices,
    video_only_webm,
    webm_opus,
)

FIXTURE = "quick_brown_fox"
DURATION_S = MANIFEST.get(FIXTURE).duration_s
AUTHORIZATION = {"Authorization": f"Token {KEY}"}


def listen(base: str, query: str = "") -> connect:
    return connect(f"{base}/v1/listen?{query}",
                   additional_headers=AUTHORIZATION)


async def stream_bytes(socket: ClientConnection, data: bytes,
                       slice_ms: int) -> list[dict[str, object]]:
    """Send `data` in slices, then CloseStream; every message back."""
    for piece in slices(data, DURATION_S, slice_ms):
        await socket.send(piece)
    await socket.send(json.dumps({"type": "CloseStream"}))
    async with asyncio.timeout(30):
        return [json.loads(m) async for m in socket]


def finals_of(messages: list[dict[str, object]]) -> str:
    texts = []
    for message in messages:
        if message["type"] == "Results" and message["is_final"]:
            channel = message["channel"]
            assert isinstance(channel, dict)
            texts.append(channel["alternatives"][0]["transcript"])
    return " ".join(t for t in texts if t)


def decoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.endswith("-decoder")]


CONTAINERS = {
    "ogg": lambda: fixture_bytes(OPUS_FIXTURE),
    "flac": lambda: fixture_bytes(FLAC_FIXTURE),
    "webm": webm_opus,
}


@pytest.mark.parametrize("slice_ms", [20, 100, 250])
@pytest.mark.parametrize("container", list(CONTAINERS))
async def test_containers_without_encoding_give_the_reference(
    start_server: Start, container: str, slice_ms: int,
) -> None:
    data = CONTAINERS[container]()
    async with start_server() as running, listen(
        running.url, "interim_results=true"
    ) as socket:
        messages = await stream_bytes(socket, data, slice_ms)
    assert socket.close_code == 1000
    assert finals_of(messages) == reference(FIXTURE)
    metadata = messages[-1]
    assert metadata["type"] == "Metadata"
    # Decoded seconds, the tail included; the hash is of what was sent.
    assert metadata["duration"] == pytest.approx(DURATION_S, abs=0.002)
    assert metadata["sha256"] == hashlib.sha256(data).hexdigest()
    assert not decoder_threads()


@pytest.mark.parametrize(("encoding", "container"), [
    ("ogg-opus", "ogg"), ("opus", "ogg"), ("opus", "webm"),
    ("flac", "flac"),
])
async def test_an_encoding_that_names_the_container_is_taken(
    start_server: Start, encoding: str, container: str,
) -> None:
    # sample_rate is ignored: the container's header says the rate.
    async with start_server() as running, listen(
        running.url, f"encoding={encoding}&sample_rate=8000"
    ) as socket:
        messages = await stream_bytes(socket, CONTAINERS[container](), 100)
    assert finals_of(messages) == reference(FIXTURE)


@dataclass
class Meter:
    """Hooks that add up the seconds each stream is billed for."""

    seconds: list[float] = field(default_factory=list)

    async def admit(self, start: StreamStart) -> StreamTracker:
        return self

    async def audio(self, seconds: float) -> str | None:
        self.seconds.append(seconds)
        return None

    async def ended(self) -> None:
        return None


async def test_billing_counts_decoded_seconds(start_server: Start) -> None:
    meter = Meter()
    async with start_server(hooks=meter) as running, listen(
        running.url
    ) as socket:
        await stream_bytes(socket, fixture_bytes(OPUS_FIXTURE), 100)
    assert sum(meter.seconds) == pytest.approx(DURATION_S, abs=0.002)


async def test_a_header_dripped_a_byte_at_a_time_still_works(
    start_server: Start,
) -> None:
    data = fixture_bytes(OPUS_FIXTURE)
    async with start_server() as running, listen(running.url) as socket:
        for i in range(900):  # the header pages, one byte a frame
            await socket.send(data[i : i + 1])
        messages = await stream_bytes(socket, data[900:], 100)
    assert finals_of(messages) == reference(FIXTURE)


async def closed_with(start_server: Start, query: str,
                      *frames: bytes) -> tuple[int | None, str | None]:
    async with start_server() as running, listen(running.url,
                                                 query) as socket:
        for frame in frames:
            await socket.send(frame)
        await socket.send(json.dumps({"type": "CloseStream"}))
        async with asyncio.timeout(30):
            await socket.wait_closed()
    assert not decoder_threads()
    return socket.close_code, socket.close_reason


def with_garbage(data: bytes, size: int) -> bytes:
    return data + bytes(range(256)) * (size // 256)


@pytest.mark.parametrize(("query", "frames", "reason"), [
    ("encoding=flac", [fixture_bytes(OPUS_FIXTURE)[:4000]],
     "expected flac data, but the stream starts as ogg"),
    ("encoding=ogg-opus", [bytes(3200)],
     "expected ogg data, but the stream starts as raw audio"),
    ("", [video_only_webm()],
     "the webm container holds no audio stream"),
    ("", [with_garbage(fixture_bytes(OPUS_FIXTURE)[:841], 3_072)],
     "the ogg stream ended before any audio"),  # found at the close
    ("", [webm_opus()[:3000], *[with_garbage(b"", 65_536)] * 5],
     "bytes of the stream held no audio packet"),
], ids=["flac-declared", "raw-for-ogg", "video-only", "garbage-header",
        "garbage-after-audio"])
async def test_bad_container_bytes_close_the_stream_with_the_reason(
    start_server: Start, query: str, frames: list[bytes], reason: str,
) -> None:
    code, why = await closed_with(start_server, query, *frames)
    assert code == 1008
    assert (why or "").startswith("DATA-0000: ")
    assert reason in (why or "")


async def test_assemblyai_takes_no_container(start_server: Start) -> None:
    async with start_server() as running:
        socket = await connect(
            f"{running.url}/v3/ws?encoding=pcm_s16le&sample_rate=16000",
            additional_headers={"Authorization": KEY})
        await socket.send(fixture_bytes(OPUS_FIXTURE)[:4000])
        async with asyncio.timeout(30):
            await socket.wait_closed()
    assert (socket.close_code, socket.close_reason) == (
        3007, "invalid audio: ogg container, but raw linear16 was declared")


async def test_no_decoder_thread_outlives_its_stream(
    start_server: Start,
) -> None:
    data = fixture_bytes(OPUS_FIXTURE)
    async with start_server() as running:
        leaver = await connect(f"{running.url}/v1/listen",
                               additional_headers=AUTHORIZATION)
        await leaver.send(data[:9_000])  # mid-stream, then gone
        leaver.transport.abort()
        stayer = await connect(f"{running.url}/v1/listen",
                               additional_headers=AUTHORIZATION)
        await stayer.send(data[:9_000])
        async with asyncio.timeout(10):
            while len(running.server.handlers) != 1:
                await asyncio.sleep(0.01)
        assert len(decoder_threads()) == 1  # the stayer's
    # The server has shut down: the stayer's stream ended with it.
    assert stayer.close_code == 1001
    assert not decoder_threads()
