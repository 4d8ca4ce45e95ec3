"""The stream-aware policy running in Ray Serve, on live replicas.

`serve --min-replicas 1 --max-replicas 2` with short windows (1 s up,
4 s down) and the replicas' reports pushed every half second: streams
held open past 80% of one replica's capacity bring a second replica,
twice the capacity never brings a third (the maximum), and when the
streams end the fleet goes back to one replica, never to none (the
minimum). A replica is counted by its record in the lab directory and
its process being alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from ch12_scaling.settings import capacity_streams
from examples.fleet_client import CHUNK, open_stream
from examples.service import running_service
from tests.ch12.fleet_harness import ray_processes

KEY = "scale-key"
TIMEOUT_S = 120.0
COST_MS = 60.0  # ms of device per audio second: 12 streams a replica
pytestmark = pytest.mark.timeout(400)


def alive(lab: Path) -> set[str]:
    """Replicas whose process runs."""
    running = set()
    for record in lab.glob("*.json"):
        pid = int(json.loads(record.read_text())["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 0)
            running.add(record.stem)
    return running


async def until(lab: Path, count: int) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while len(alive(lab)) != count:
            await asyncio.sleep(0.5)


async def held(url: str) -> ClientConnection:
    """A stream kept open with silence, as an idle microphone sends."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            try:
                socket = await open_stream(url, KEY)
            except InvalidStatus as refused:  # full, or a model loading
                assert refused.response.status_code == 503
                await asyncio.sleep(0.2)
                continue
            return socket


async def keep_talking(sockets: list[ClientConnection]) -> None:
    silence = bytes(CHUNK)
    while True:
        await asyncio.gather(*(s.send(silence) for s in sockets))
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def streams(url: str, count: int) -> AsyncIterator[None]:
    sockets = [await held(url) for _ in range(count)]
    talking = asyncio.create_task(keep_talking(sockets))
    try:
        yield
    finally:
        talking.cancel()
        await asyncio.gather(talking, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in sockets))


async def test_the_policy_scales_out_within_its_bounds_and_back() -> None:
    capacity = capacity_streams(COST_MS)
    with tempfile.TemporaryDirectory(prefix="ch12-scale-") as name:
        lab = Path(name)
        args = ("-m", "ch12_scaling", "serve", "--port", "0",
                "--min-replicas", "1", "--max-replicas", "2",
                "--audio-cost-ms", str(COST_MS),
                "--scale-up-window-s", "1", "--scale-down-window-s", "4",
                "--scale-look-back-s", "2", "--lab-dir", name)
        env = {"SPEECH_API_KEYS": KEY, "CH04_LOAD_S": "0",
               "CH04_WARMUP_S": "0",
               "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S":
                   "0.5"}
        async with running_service(args, env, start_timeout_s=TIMEOUT_S,
                                   stop_timeout_s=90) as service:
            url = f"ws://127.0.0.1:{service.port}"
            await until(lab, 1)
            async with streams(url, int(0.9 * capacity)):
                await until(lab, 2)  # above 80% of one: a second
            async with streams(url, 2 * capacity):
                await asyncio.sleep(5.0)  # windows pass: no third
                assert len(alive(lab)) == 2
            await until(lab, 1)  # quiet: back to the minimum
            await asyncio.sleep(6.0)  # a down window more: not to none
            assert len(alive(lab)) == 1
        assert service.process.returncode == 0
        assert ray_processes() == []
