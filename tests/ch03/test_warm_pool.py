"""The warm pool, end to end on chapter 4's service: a spare serves a
real stream, takes over from a worker that dies, and the pool leaves
no process behind on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from ch03_gpu.coldstart_lab import (
    KEY,
    Service,
    load_fixture,
    service,
    wait_for_spare,
)
from ch03_gpu.first_result import (
    stream_until_first_result,
    wait_until_ready,
)
from examples.fixtures import load_manifest

FAST = ("--load-s", "0", "--warmup-s", "0", "--warm-pool", "1")
REFERENCE = load_manifest().get("quick_brown_fox").text


def pids_of(running: Service, phase: str) -> list[int]:
    return [m.pid for m in running.marks() if m.phase == phase]


async def gone(pid: int, group: bool, timeout_s: float = 10.0) -> bool:
    """Whether the process (or every process of its group) exits in
    time; exited children of exited parents are reaped by init."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                (os.killpg if group else os.kill)(pid, 0)
            except ProcessLookupError:
                return True
            await asyncio.sleep(0.05)


async def test_a_spare_serves_and_replaces_a_dead_worker(
        tmp_path: Path) -> None:
    pcm = load_fixture()
    async with service(FAST, tmp_path) as running:
        await wait_until_ready(running.port, timeout_s=30)
        first = await stream_until_first_result(running.port, KEY, pcm)
        assert first.transcript == REFERENCE
        serving, spare = await wait_for_spare(running)
        os.kill(serving, signal.SIGKILL)
        taken_over = await stream_until_first_result(running.port, KEY,
                                                     pcm)
        assert taken_over.transcript == REFERENCE
        assert pids_of(running, "activated")[-1] == spare
        serving_now, new_spare = await wait_for_spare(running)
        assert serving_now == spare
        assert new_spare not in (serving, spare)
        assert await gone(serving, group=True)  # its matcher went too


async def test_sigterm_stops_the_pool_and_every_worker(
        tmp_path: Path) -> None:
    async with service(FAST, tmp_path) as running:
        await wait_until_ready(running.port, timeout_s=30)
        await wait_for_spare(running)
        workers = pids_of(running, "built")
        matchers = pids_of(running, "matcher_up")
        running.process.terminate()
        async with asyncio.timeout(30):
            assert await running.process.wait() == 0
    assert len(workers) == 2 and len(matchers) == 2
    for pid in workers:
        assert await gone(pid, group=True)
    for pid in matchers:
        assert await gone(pid, group=False)


def test_a_pool_whose_workers_die_warming_gives_up() -> None:
    program = (
        "import sys\n"
        "from ch03_gpu.warm_pool import WarmPool\n"
        "pool = WarmPool(prepare=lambda: None, work=lambda p, h: 3)\n"
        "sys.exit(pool.run())\n")
    done = subprocess.run([sys.executable, "-c", program], timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "warm_pool_failing early_deaths=3" in done.stderr
