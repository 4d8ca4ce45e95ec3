"""N streams of speech at real-time pace; latency per chunk.

Chapter 5, "Production reality". Chapter 4's load, on any transport:
each stream sends 100 ms of the conversation fixture every 100 ms, and
a timed chunk's latency runs from its send to the first result whose
end reaches the chunk's end. Timed chunks lie inside an utterance,
after its first word has ended: before that no result has words to
carry. A timed chunk nothing covers within DRAIN_S of the last send is
unanswered, and counted at the wait it was given.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ch04_streaming.client import load_audio
from ch04_streaming.settings import DEFAULT_MANIFEST, fixture_file
from ch05_protocols.transports import Link

CHUNK_S = 0.1
CHUNK_BYTES = 3_200  # 100 ms of 16 kHz linear16
DRAIN_S = 1.0


@dataclass(frozen=True)
class Workload:
    chunks: list[bytes]
    timed: list[bool]
    starts: list[int]  # chunks just before an utterance: stream offsets

    @property
    def audio_s(self) -> float:
        return len(self.chunks) * CHUNK_S


def workload(fixture_id: str = "support_call",
             manifest: Path = DEFAULT_MANIFEST) -> Workload:
    entry = next(f for f in json.loads(manifest.read_text())["fixtures"]
                 if f["id"] == fixture_id)
    audio = load_audio(fixture_file(manifest, entry["path"])).payload
    whole = len(audio) // CHUNK_BYTES * CHUNK_BYTES  # streams loop
    chunks = [audio[i:i + CHUNK_BYTES]
              for i in range(0, whole, CHUNK_BYTES)]
    spans = [(u["words"][0]["end"], u["end"])
             for u in entry["utterances"]]
    timed = [any(s <= i * CHUNK_S and (i + 1) * CHUNK_S <= e
                 for s, e in spans) for i in range(len(chunks))]
    # A stream starts in the silence before an utterance, so that the
    # recognizer hears whole words from its first utterance on.
    starts = [max(0, int(u["start"] / CHUNK_S) - 3)
              for u in entry["utterances"]]
    return Workload(chunks, timed, starts)


@dataclass
class StreamLog:
    latencies_s: list[float] = field(default_factory=list)
    unanswered: int = 0
    failed: str | None = None


@dataclass(frozen=True)
class Sent:
    end_s: float  # stream time at the chunk's end
    at: float
    timed: bool


async def cover(link: Link, sent: deque[Sent], log: StreamLog) -> None:
    async for end_s in link.results():
        now = time.monotonic()
        while sent and sent[0].end_s <= end_s + 1e-6:
            chunk = sent.popleft()
            if chunk.timed:
                log.latencies_s.append(now - chunk.at)


async def drive(link: Link, load: Workload, offset: int, start_at: float,
                measure_from: float, stop_at: float,
                log: StreamLog) -> None:
    sent: deque[Sent] = deque()
    reader = asyncio.create_task(cover(link, sent, log))
    try:
        index, due = 0, start_at
        while due < stop_at:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            position = (offset + index) % len(load.chunks)
            index += 1
            now = time.monotonic()
            timed = load.timed[position] and now >= measure_from
            sent.append(Sent(round(index * CHUNK_S, 6), now, timed))
            await link.send(load.chunks[position])
            due += CHUNK_S
        await asyncio.sleep(DRAIN_S)  # for the last results
    except Exception as error:  # a stream that broke: its chunks count
        log.failed = type(error).__name__
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        given_up = time.monotonic()
        for chunk in sent:
            if chunk.timed:
                log.unanswered += 1
                log.latencies_s.append(max(given_up - chunk.at, DRAIN_S))


async def run_load(open_link: Callable[[], Coroutine[Any, Any, Link]],
                   load: Workload, streams: int, warmup_s: float = 3.0,
                   measure_s: float = 10.0) -> list[StreamLog]:
    limit = asyncio.Semaphore(32)  # a ramp, not a thundering herd

    async def opened() -> Link:
        async with limit:
            return await open_link()

    links = await asyncio.gather(*(opened() for _ in range(streams)))
    start = time.monotonic() + 0.5
    logs = [StreamLog() for _ in links]
    await asyncio.gather(*(
        drive(link, load, load.starts[i % len(load.starts)],
              start + (i % 100) / 100 * CHUNK_S, start + warmup_s,
              start + warmup_s + measure_s, log)
        for i, (link, log) in enumerate(zip(links, logs, strict=True))))
    await asyncio.gather(*(link.close() for link in links),
                         return_exceptions=True)
    return logs


async def send_all(link: Link, chunks: Sequence[bytes]) -> int:
    """As fast as the transport takes it; the results read to the end.
    Returns how many results carried words."""

    async def read() -> int:
        return sum([1 async for _ in link.results()])

    reader = asyncio.create_task(read())
    for chunk in chunks:
        await link.send(chunk)
    await link.finish()
    return await reader
