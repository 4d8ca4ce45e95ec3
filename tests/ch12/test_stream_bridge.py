"""The bridge's pieces that need no Serve: a far link, and the headers
passed on.

A delayed link keeps order and holds every message at least its delay;
a source that fails ends the link rather than hanging it; with no delay
the source is used as it is. Hop-by-hop and handshake headers are never
passed on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from ch12_scaling.stream_bridge import delayed, passed_on


async def numbers(count: int, fail: bool = False
                  ) -> AsyncGenerator[int, None]:
    for n in range(count):
        yield n
        await asyncio.sleep(0)
    if fail:
        raise ConnectionError("gone")


async def test_a_far_link_keeps_order_and_holds_each_message() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    seen = [(n, loop.time() - start) async for n in delayed(numbers(5),
                                                            0.05)]
    assert [n for n, _ in seen] == list(range(5))
    assert all(after >= 0.05 for _, after in seen)


async def test_a_failing_source_ends_the_link() -> None:
    async with asyncio.timeout(5):
        got = [n async for n in delayed(numbers(3, fail=True), 0.01)]
    assert got == [0, 1, 2]


def test_no_delay_is_the_source_itself() -> None:
    source = numbers(1)
    assert delayed(source, 0.0) is source
    asyncio.run(source.aclose())


@pytest.mark.parametrize("name", ["Host", "connection", "Upgrade",
                                  "Sec-WebSocket-Key", "Content-Length"])
def test_hop_headers_are_not_passed_on(name: str) -> None:
    kept = passed_on([(name, "x"), ("Authorization", "Token k"),
                      ("dg-error", "invalid API key")])
    assert kept == [("Authorization", "Token k"),
                    ("dg-error", "invalid API key")]
