"""Handshakes as load: a steady loop of them, a storm of them, and the
result latency of legitimate streams meanwhile.

For chapter 9's benchmark. `handshakes` opens and closes streams, a
few at a time, and counts how each was answered (101: opened); `storm`
launches a burst of them every second, as a misbehaving client does,
in a process of its own (`storm_in_process`), so its CPU is not the
legitimate client's; `result_latencies_ms` streams fixtures at the pace
of speech and returns every result's latency, from the audio of its
last word to its arrival, as `ch04_streaming.client` dates it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from ch04_streaming.client import DIALECTS, Result, load_audio, stream

NO_ANSWER = 0  # the connection failed without an HTTP answer


async def status_of(url: str, headers: Mapping[str, str]) -> int:
    """Open a stream and close it at once: 101, or the refusal's."""
    try:
        async with connect(url, additional_headers=dict(headers)):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code
    except (InvalidHandshake, OSError, TimeoutError):
        return NO_ANSWER


async def handshakes(url: str, headers: Mapping[str, str], count: int,
                     concurrency: int) -> Counter[int]:
    """`count` streams opened and closed, `concurrency` at a time: how
    many got each status."""
    statuses: Counter[int] = Counter()
    turns = iter(range(count))

    async def client() -> None:
        for _ in turns:  # shared: each turn is taken once
            statuses[await status_of(url, headers)] += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return statuses


async def storm(url: str, headers: Mapping[str, str], per_second: int,
                seconds: int) -> Counter[int]:
    """`per_second` handshakes at once, every second, for `seconds`."""
    statuses: Counter[int] = Counter()

    async def one() -> None:
        statuses[await status_of(url, headers)] += 1

    bursts: list[asyncio.Task[None]] = []
    for _ in range(seconds):
        bursts += [asyncio.create_task(one()) for _ in range(per_second)]
        await asyncio.sleep(1.0)  # the storm's pace
    await asyncio.gather(*bursts)
    return statuses


def storm_in_process(url: str, headers: Mapping[str, str],
                     per_second: int, seconds: int) -> dict[int, int]:
    """`storm`, run where a process pool calls it."""
    return dict(asyncio.run(storm(url, headers, per_second, seconds)))


async def result_latencies_ms(
    url: str, key: str, fixtures: Sequence[Path], realtime: bool = True,
    during: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    """Every result's latency, the `fixtures` streamed side by side;
    `during` runs once every stream has had a result (all are open)."""
    everyone_heard = asyncio.Event()
    heard: set[int] = set()

    def note(index: int) -> Callable[[Result], None]:
        def on_result(result: Result) -> None:
            heard.add(index)
            if len(heard) == len(fixtures):
                everyone_heard.set()
        return on_result

    async def meanwhile() -> None:
        if during is not None:
            async with asyncio.timeout(60):
                await everyone_heard.wait()
            await during()

    reports, _ = await asyncio.gather(
        asyncio.gather(*(stream(url, DIALECTS["deepgram"], key,
                                load_audio(path), realtime=realtime,
                                on_result=note(i))
                         for i, path in enumerate(fixtures))),
        meanwhile())
    return [r.latency_s * 1000 for report in reports
            for r in report.results if r.text]
