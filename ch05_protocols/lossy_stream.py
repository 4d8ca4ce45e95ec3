"""One stream of speech at the pace of speech, timed chunk by chunk.

Chapter 5, "WebTransport: QUIC datagrams, head-of-line blocking". What
every transport of the lossy-link lab shares: what a transport is
(`Transport`: start its server, the mock engine at model time zero,
and open a `Stream` to it), and the driver that sends one chunk every
20 ms by the clock, noting when each was sent, while a reader notes
when each result arrived and how much audio it covers. The result is a
`Trace`; the lab's statistics read latency and audio lost from it, the
same way for every transport.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ch05_protocols.compare import ENGINE, KEY
from ch05_protocols.lossy_speech import CHUNK_S

CONNECT_TIMEOUT_S = 30.0  # a lost SYN costs a second, or more


def service_env() -> dict[str, str]:
    """A service's key and engine (the mock at model time zero, as the
    transports compared elsewhere in the chapter), by variable."""
    return {"SPEECH_API_KEYS": KEY,
            **{f"CH04_{k.upper()}": v for k, v in ENGINE.items()}}


@dataclass(frozen=True)
class Covered:
    """A result: the recogniser has heard the stream up to `end_s`."""

    end_s: float


@dataclass(frozen=True)
class Received:
    """The server's report of the audio it received, in seconds."""

    audio_s: float


Event = Covered | Received


def deepgram_covered(message: Mapping[str, Any]) -> Covered | None:
    """A Deepgram `Results` with words (as the WebTransport and WebRTC
    services speak): it covers the stream to `start` + `duration`."""
    if message.get("type") != "Results":
        return None
    if not message["channel"]["alternatives"][0]["transcript"]:
        return None
    return Covered(round(message["start"] + message["duration"], 3))


class Stream(Protocol):
    """One client stream on one transport."""

    async def send(self, chunk: bytes) -> None: ...  # 20 ms of audio
    async def finish(self) -> None: ...  # no more audio
    def events(self) -> AsyncIterator[Event]: ...  # until the stream ends
    async def close(self) -> None: ...


class Transport(Protocol):
    """A transport of the lab: its server, and streams to it."""

    @property
    def name(self) -> str: ...
    @property
    def rate(self) -> int: ...  # of the linear16 audio its streams send

    def serve(self) -> AbstractAsyncContextManager[int]: ...  # its port
    async def connect(self, port: int) -> Stream: ...


@dataclass
class Trace:
    """When each chunk went out, and when each result came back."""

    sent_at: list[float] = field(default_factory=list)  # by chunk
    results: list[tuple[float, float]] = field(
        default_factory=list)  # (end_s, received at)
    received_s: float | None = None  # as the server reports it
    ended_at: float | None = None  # when the stream's last event came


async def read(stream: Stream, trace: Trace,
               clock: Callable[[], float]) -> None:
    async for event in stream.events():
        if isinstance(event, Covered):
            trace.results.append((event.end_s, clock()))
        else:
            trace.received_s = event.audio_s
    trace.ended_at = clock()


async def stream_speech(stream: Stream, chunks: Sequence[bytes],
                        drain_s: float = 15.0,
                        clock: Callable[[], float] = time.monotonic,
                        ) -> Trace:
    """Send `chunks` at the pace of speech, then read to the end."""
    trace = Trace()
    reader = asyncio.create_task(read(stream, trace, clock))
    try:
        start = clock()
        for index, chunk in enumerate(chunks):
            # Paced from the start, so a late send does not delay the
            # ones after it, as a microphone does not wait.
            await asyncio.sleep(max(0.0, start + index * CHUNK_S - clock()))
            trace.sent_at.append(clock())
            await stream.send(chunk)
        await stream.finish()
        try:
            async with asyncio.timeout(drain_s):
                await asyncio.shield(reader)
        except TimeoutError:
            raise TimeoutError(f"the stream did not end within {drain_s:g}"
                               " s of its last chunk") from None
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await stream.close()
    return trace
