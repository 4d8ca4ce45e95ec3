"""The cold-start lab: start chapter 4's service and time every phase.

Chapter 3, "Cold start anatomy" and "Cold start mitigation". Each run
spawns `python -m ch04_streaming` on a free port with a phase log, polls
`/readyz`, streams a recording the moment it says ready, and dates the
first result. The service's own marks (`phases.py`) split the time
from spawn to first result into phases. A warm-pool run starts the
service with `--warm-pool 1`, kills the serving worker, and times its
loss to the first result its replacement gives. Chapter 3 may not
import chapter 4: it runs it as a process, as an operator would.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from ch03_gpu.first_result import (
    Pcm,
    read_wav,
    stream_until_first_result,
    wait_until_ready,
)
from ch03_gpu.phases import PHASE_LOG_ENV, PhaseMark, read_marks

SERVICE = "ch04_streaming"
KEY = "coldstart-lab"
# A short utterance; data of `examples`, found where it is installed.
DEFAULT_FIXTURE = Path(str(files("examples") / "audio"
                           / "quick_brown_fox.wav"))
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Phase:
    name: str
    begins: str  # the mark it starts at
    ends: str
    simulated: bool = False  # a configured sleep, not measured work


# From spawn to first result, in order; the lab adds `spawn`,
# `ready_seen` and `first_result` to the service's own marks.
ANATOMY = (
    Phase("interpreter start", "spawn", "main"),
    Phase("imports", "main", "imported"),
    Phase("build and listen", "imported", "listening"),
    Phase("matcher process start", "listening", "matcher_up"),
    Phase("lexicon load", "matcher_up", "lexicon_loaded"),
    Phase("device load", "lexicon_loaded", "device_loaded", True),
    Phase("device warm-up", "device_loaded", "device_warm", True),
    Phase("warm-up inference", "device_warm", "ready"),
    Phase("readiness seen", "ready", "ready_seen"),
    Phase("first stream", "ready_seen", "first_result"),
)
# A warm-pool worker lost, to the first result of the spare replacing it.
FAILOVER = (
    Phase("loss noticed, spare told", "lost", "activated"),
    Phase("spare starts serving", "activated", "listening"),
    Phase("first stream", "listening", "first_result"),
)


@dataclass(frozen=True)
class Run:
    """One start: when each mark happened, and what the client heard."""

    at: dict[str, float]  # mark -> time.monotonic()
    transcript: str

    def seconds(self, phase: Phase) -> float:
        return self.at[phase.ends] - self.at[phase.begins]

    def total_s(self, begins: str) -> float:
        return self.at["first_result"] - self.at[begins]


@dataclass(frozen=True)
class Service:
    process: asyncio.subprocess.Process
    port: int
    spawned_at: float
    marks_path: Path

    def marks(self) -> list[PhaseMark]:
        return read_marks(self.marks_path)


@asynccontextmanager
async def service(args: Sequence[str], workdir: Path
                  ) -> AsyncIterator[Service]:
    """`python -m ch04_streaming --port 0 ARGS`, stopped on the way out
    with SIGTERM (killed if it outlives `STOP_TIMEOUT_S`)."""
    marks_path = workdir / "marks.jsonl"
    marks_path.unlink(missing_ok=True)
    env = {**os.environ, PHASE_LOG_ENV: str(marks_path),
           "SPEECH_API_KEYS": KEY}
    with open(workdir / "service.log", "ab") as log:
        spawned_at = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", SERVICE, "--port", "0", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=log)
    try:
        port = await _listening_port(process)
        yield Service(process, port, spawned_at, marks_path)
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def _listening_port(process: asyncio.subprocess.Process) -> int:
    assert process.stdout is not None
    async with asyncio.timeout(START_TIMEOUT_S):
        while line := (await process.stdout.readline()).decode():
            if line.startswith("listening on "):
                return int(line.split()[2].rsplit(":", 1)[1])
    raise RuntimeError(f"{SERVICE} exited before listening")


def first_marks(marks: Sequence[PhaseMark]) -> dict[str, float]:
    """Each phase's first mark (a phase marked twice counts once)."""
    at: dict[str, float] = {}
    for m in marks:
        at.setdefault(m.phase, m.at)
    return at


async def cold_start(args: Sequence[str], pcm: Pcm, workdir: Path) -> Run:
    """Spawn the service, stream once it is ready; the run's marks."""
    async with service(args, workdir) as running:
        ready_seen = await wait_until_ready(running.port)
        outcome = await stream_until_first_result(running.port, KEY, pcm)
    at = first_marks(running.marks())
    at.update(spawn=running.spawned_at, ready_seen=ready_seen,
              first_result=outcome.first_result_at)
    return Run(at, outcome.transcript)


async def warm_pool_failovers(rounds: int, args: Sequence[str], pcm: Pcm,
                              workdir: Path) -> list[Run]:
    """Kill the serving worker of a warm pool `rounds` times; time each
    loss to the first result of the spare that takes its place."""
    runs = []
    async with service([*args, "--warm-pool", "1"], workdir) as running:
        await wait_until_ready(running.port)
        for _ in range(rounds):
            serving, spare = await wait_for_spare(running)
            lost = time.monotonic()
            os.kill(serving, signal.SIGKILL)
            _wait_for_exit(serving)
            outcome = await stream_until_first_result(running.port, KEY,
                                                      pcm)
            mine = [m for m in running.marks() if m.pid == spare]
            at = first_marks(mine)
            at.update(lost=lost, first_result=outcome.first_result_at)
            runs.append(Run(at, outcome.transcript))
    return runs


async def wait_for_spare(running: Service, timeout_s: float = 30.0
                             ) -> tuple[int, int]:
    """The serving worker's pid and a parked spare's, once there is one."""
    async with asyncio.timeout(timeout_s):
        while True:
            marks = running.marks()
            activated = [m.pid for m in marks if m.phase == "activated"]
            parked = {m.pid for m in marks if m.phase == "parked"}
            spares = parked - set(activated)
            if activated and spares:
                return activated[-1], min(spares)
            await asyncio.sleep(0.02)


def _wait_for_exit(pid: int, timeout_s: float = 5.0) -> None:
    """Until `pid` has exited: a stream sent sooner could reach it.
    A pidfd says so at once where there is one (Linux)."""
    if not hasattr(os, "pidfd_open"):
        return
    with suppress(ProcessLookupError):
        fd = os.pidfd_open(pid)
        try:
            select.select([fd], [], [], timeout_s)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class Variant:
    name: str
    args: tuple[str, ...]


BASELINE = Variant("as shipped", ())
NO_CACHE = Variant("templates built at start", ("--lexicon-cache", ""))
NO_WARMUP = Variant("ready before warm-up", ("--warmup-decodes", "0"))


async def cold_starts(variants: Sequence[Variant], runs: int, pcm: Pcm,
                      workdir: Path,
                      progress: Callable[[str], None] = lambda _: None,
                      ) -> dict[str, list[Run]]:
    """`runs` cold starts of each variant, interleaved, so that load
    from elsewhere on the machine falls on every variant alike. One
    start first, not counted, fills the load cache and the OS's."""
    await cold_start(BASELINE.args, pcm, workdir)
    results: dict[str, list[Run]] = {v.name: [] for v in variants}
    for i in range(runs):
        for variant in variants:
            progress(f"cold start {i + 1}/{runs}: {variant.name}")
            run = await cold_start(variant.args, pcm, workdir)
            results[variant.name].append(run)
    return results


def lab_workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="ch03-coldstart-")


def load_fixture(path: Path = DEFAULT_FIXTURE) -> Pcm:
    return read_wav(path)
