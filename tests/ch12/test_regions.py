"""Two regions on Ray Serve: latency-based routing, and residency kept.

One replica in the EU (20 ms away) and one in the US (140 ms), each
admitting one stream. A customer who allows any region lands in the
nearer EU, and in the US once the EU is full; an EU-only customer
(chapter 10's `acme-eu`) is refused with `Retry-After` while the EU is
full, and is never served in the US, not even when the EU replica is
killed and the US one is all there is.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from examples.fleet_client import region_of
from examples.service import Service, running_service
from tests.ch12.fleet_harness import ray_processes

EU_KEY, ANY_KEY = "eu-key", "any-key"
TIMEOUT_S = 90.0
pytestmark = [pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.timeout(300)]


class Regions:
    def __init__(self, service: Service, lab: Path) -> None:
        self.service, self.lab = service, lab

    def open(self, key: str) -> connect:
        return connect(
            f"ws://127.0.0.1:{self.service.port}/v1/listen?encoding="
            "linear16&sample_rate=16000",
            additional_headers={"Authorization": f"Token {key}"})

    def pid_in(self, region: str) -> int:
        for record in self.lab.glob("*.json"):
            found = json.loads(record.read_text())
            if found["region"] == region:
                return int(found["pid"])
        raise LookupError(region)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def regions() -> AsyncIterator[Regions]:
    with tempfile.TemporaryDirectory(prefix="ch12-regions-") as lab:
        args = ("-m", "ch12_scaling", "serve", "--port", "0",
                "--replicas", "2", "--regions", "eu,us",
                "--region-rtt-ms", "eu=20,us=140",
                "--max-streams-per-replica", "1",
                "--key-owners", f"{EU_KEY}=acme-eu", "--lab-dir", lab)
        env = {"SPEECH_API_KEYS": f"{EU_KEY},{ANY_KEY}",
               "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}
        async with running_service(args, env, start_timeout_s=TIMEOUT_S,
                                   stop_timeout_s=60) as service:
            running = Regions(service, Path(lab))
            await until_both_warm(running)
            yield running
        assert service.process.returncode == 0
        assert ray_processes() == []


async def until_both_warm(regions: Regions) -> None:
    seen: set[str] = set()
    async with asyncio.timeout(TIMEOUT_S):
        while seen != {"eu", "us"}:
            for key in (ANY_KEY, ANY_KEY):
                try:
                    async with regions.open(key) as a, regions.open(
                            key) as b:
                        seen |= {region_of(a), region_of(b)}
                except InvalidStatus:
                    await asyncio.sleep(0.3)


async def refused(regions: Regions, key: str) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as caught:
        async with regions.open(key) as socket:
            pytest.fail(f"served in {region_of(socket)}")
    return caught.value


async def lands_in(regions: Regions, key: str, region: str
                   ) -> ClientConnection:
    """A stream of `key` that lands in `region`. The routers place by
    the replicas' reports, a moment old: a stream placed before a report
    caught up is refused (503) or lands elsewhere, and a client tries
    again, as a client told to retry does."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            try:
                socket = await regions.open(key)
            except InvalidStatus as refused:
                assert refused.response.status_code == 503
            else:
                if region_of(socket) == region:
                    return socket
                await socket.close()
            await asyncio.sleep(0.2)


async def test_any_region_goes_near_then_spills_over(
        regions: Regions) -> None:
    # 20 ms away, not 140; then, the EU full, the nearest with room.
    async with (await lands_in(regions, ANY_KEY, "eu"),
                await lands_in(regions, ANY_KEY, "us")):
        pass


async def test_an_eu_only_customer_is_refused_not_moved(
        regions: Regions) -> None:
    async with await lands_in(regions, ANY_KEY, "eu"):
        async with await lands_in(regions, ANY_KEY, "us"):
            pass  # the routers know the EU is full
        no = await refused(regions, EU_KEY)
        assert no.response.status_code == 503
        assert "Retry-After" in no.response.headers
    async with await lands_in(regions, EU_KEY, "eu"):
        pass  # room again: served, and in the EU


async def test_with_the_eu_gone_an_eu_only_customer_is_refused(
        regions: Regions) -> None:
    os.kill(regions.pid_in("eu"), signal.SIGKILL)
    async with await lands_in(regions, ANY_KEY, "us"):
        pass  # a customer who allows any region is served meanwhile
    async with asyncio.timeout(TIMEOUT_S):
        for _ in range(5):  # until Serve has a new EU replica
            try:
                async with regions.open(EU_KEY) as socket:
                    assert region_of(socket) == "eu"
                    return
            except InvalidStatus as no:
                assert no.response.status_code == 503
                assert "Retry-After" in no.response.headers
                await asyncio.sleep(0.5)
