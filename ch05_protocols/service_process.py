"""A service under measurement, run as its own process.

Chapter 5, "Production reality". Starts `python -m ch05_protocols ...`
with a free port, reads the port from the line it prints, waits until
it is ready (`/readyz` for WebSocket, the health service for gRPC;
WebTransport, on UDP, once it listens: a session that comes while its
model loads is told 503, to retry), keeps the lines it printed before
(a certificate's hash, say), and reads the CPU seconds it and its
children (the mock's matcher) have used, from /proc. On exit: SIGTERM,
then a kill if it lingers.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

LISTENING = re.compile(r"listening on (\w+)://127\.0\.0\.1:(\d+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User and system time of `pid` and of its children, alive now."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # a process that ended while we looked
            continue
        # The name, in parentheses, may hold spaces: split after it.
        fields = text.rsplit(")", 1)[1].split()
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


@dataclass(frozen=True)
class Running:
    pid: int
    port: int
    printed: tuple[str, ...] = ()  # before it said where it listens

    def cpu_s(self) -> float:
        return process_cpu_s(self.pid)


async def ready(scheme: str, port: int) -> bool:
    if scheme == "https":  # WebTransport: no HTTP over TCP to ask
        return True
    if scheme == "grpc":
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            # The generated health stub is untyped.
            stub: Any = health_pb2_grpc.HealthStub(ch)
            reply = await stub.Check(health_pb2.HealthCheckRequest(),
                                     timeout=5)
            return bool(reply.status == health_pb2.HealthCheckResponse
                        .SERVING)

    def get() -> bool:
        url = f"http://127.0.0.1:{port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return int(reply.status) == 200
        except urllib.error.HTTPError:
            return False

    return await asyncio.to_thread(get)


@asynccontextmanager
async def running(args: Sequence[str], env: Mapping[str, str],
                  timeout_s: float = 60.0) -> AsyncIterator[Running]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ch05_protocols", *args,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        printed: list[str] = []
        async with asyncio.timeout(timeout_s):
            while not (found := LISTENING.search(
                    (line := await process.stdout.readline()).decode())):
                if not line:
                    raise RuntimeError(f"{' '.join(args)} exited at start")
                printed.append(line.decode().rstrip("\n"))
            scheme, port = found.group(1), int(found.group(2))
            while not await ready(scheme, port):
                await asyncio.sleep(0.1)  # polling a status, not a race
        yield Running(process.pid, port, tuple(printed))
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            async with asyncio.timeout(30):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
