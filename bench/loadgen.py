"""A load generator: N real-time audio streams, latency per chunk.

Each stream sends 100 ms of 16 kHz PCM every 100 ms, from the long
conversation fixture at its own offset, and records, for every chunk
the caller marks as timed (inside an utterance), the time from sending
it to the first message that covers it: for the speech service, the
first `Results` whose `start + duration` reaches the chunk's end; for
the echo baseline, the chunk's own echo. Chunks of silence are sent but
not timed: no result need ever cover a pause the VAD kept from the model.
A timed chunk that nothing covers by the end of its stream, DRAIN_S
after the last send, is unanswered: counted, and timed as the wait it
was given (DRAIN_S at least, even on a stream that failed sooner), so
a lost result raises the percentiles instead of dropping out of them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

CHUNK_S = 0.1
BYTES_PER_SECOND = 32_000  # 16 kHz, 16-bit mono
DRAIN_S = 1.0  # after the last send, for the last results to arrive


@dataclass
class StreamLog:
    # One per timed chunk: until covered, or waited for if unanswered.
    latencies_s: list[float] = field(default_factory=list)
    unanswered: int = 0  # timed chunks no message covered
    failed: str | None = None


@dataclass(frozen=True)
class Sent:
    end_s: float  # stream time at the chunk's end
    at: float  # when it was sent
    timed: bool  # inside an utterance, and sent in the window


@dataclass(frozen=True)
class Window:
    """Chunks sent in [measure_from, stop_at) count; others warm up."""

    start_at: float
    measure_from: float
    stop_at: float


async def receive_results(socket: ClientConnection, sent: deque[Sent],
                          log: StreamLog) -> None:
    """Results cover chunks: pop every chunk a result reaches."""
    async for raw in socket:
        message = json.loads(raw)
        if message.get("type") != "Results":
            continue
        end = message["start"] + message["duration"] + 1e-6
        now = time.monotonic()
        while sent and sent[0].end_s <= end:
            chunk = sent.popleft()
            if chunk.timed:
                log.latencies_s.append(now - chunk.at)


async def receive_echoes(socket: ClientConnection, sent: deque[Sent],
                         log: StreamLog) -> None:
    async for _ in socket:
        chunk = sent.popleft()
        if chunk.timed:
            log.latencies_s.append(time.monotonic() - chunk.at)


async def drive(socket: ClientConnection, chunks: Sequence[bytes],
                speech: Sequence[bool], offset: int, phase_s: float,
                window: Window, echo: bool, log: StreamLog) -> None:
    sent: deque[Sent] = deque()
    receive = receive_echoes if echo else receive_results
    receiver = asyncio.create_task(receive(socket, sent, log))
    try:
        index, due, stream_bytes = 0, window.start_at + phase_s, 0
        while due < window.stop_at:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            position = (offset + index) % len(chunks)
            index += 1
            stream_bytes += len(chunks[position])
            now = time.monotonic()
            timed = speech[position] and now >= window.measure_from
            end_s = stream_bytes / BYTES_PER_SECOND
            sent.append(Sent(round(end_s, 6), now, timed))
            await socket.send(chunks[position])
            due += CHUNK_S
        await asyncio.sleep(DRAIN_S)  # let the last results arrive
    except ConnectionClosed as closed:
        log.failed = f"closed {closed.rcvd.code if closed.rcvd else '?'}"
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
        given_up = time.monotonic()
        for chunk in sent:  # never covered: a failure, not a gap
            if chunk.timed:
                log.unanswered += 1
                log.latencies_s.append(max(given_up - chunk.at, DRAIN_S))


async def open_streams(url: str, headers: dict[str, str],
                       count: int) -> list[ClientConnection]:
    """Connect `count` clients, a few at a time, as a real ramp would."""
    limit = asyncio.Semaphore(32)

    async def one() -> ClientConnection:
        async with limit:
            return await connect(url, additional_headers=headers,
                                 compression=None, open_timeout=30,
                                 ping_interval=None)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def run_load(url: str, headers: dict[str, str],
                   chunks: Sequence[bytes], speech: Sequence[bool],
                   streams: int, echo: bool,
                   warmup_s: float = 3.0, measure_s: float = 10.0,
                   ) -> list[StreamLog]:
    sockets = await open_streams(url, headers, streams)
    start = time.monotonic() + 0.5
    window = Window(start, start + warmup_s, start + warmup_s + measure_s)
    logs = [StreamLog() for _ in sockets]
    spread = len(chunks) // max(streams, 1) or 1
    await asyncio.gather(*(
        drive(socket, chunks, speech, offset=i * spread,
              phase_s=(i % 100) / 100 * CHUNK_S, window=window,
              echo=echo, log=log)
        for i, (socket, log) in enumerate(zip(sockets, logs, strict=True))
    ))
    await asyncio.gather(*(s.close() for s in sockets),
                         return_exceptions=True)
    return logs
