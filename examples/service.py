"""Run a chapter's service as its own process, as an operator would.

Starts `python -m <package>` with a free port, reads the port from the
line the service prints when it listens, and on exit stops it with
SIGTERM and waits for it, killing it if it does not stop in time. The
tour, the benchmarks and the end-to-end tests all start services this
way, and wait, where they stream, until `/readyz` says the model is
loaded.
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

REPO_ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on \w+://127\.0\.0\.1:(\d+)")
STREAMING = re.compile(r"streaming on (ws://127\.0\.0\.1:\d+)")


@dataclass(frozen=True)
class Service:
    process: asyncio.subprocess.Process
    port: int
    banner: list[str]  # what it printed up to the line with its port

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def streaming_url(self) -> str:
        """For a service with a second port for streams (chapter 8)."""
        found = STREAMING.search("".join(self.banner))
        if found is None:
            raise RuntimeError(f"no streaming port in: {self.banner}")
        return found.group(1)

    @property
    def streaming_port(self) -> int:
        return int(self.streaming_url.rsplit(":", 1)[1])


async def http_status(url: str) -> int:
    """The status a GET of `url` answers, errors included."""

    def fetch() -> int:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as error:
            return error.code

    return await asyncio.to_thread(fetch)


async def wait_until_ready(port: int, timeout_s: float = 60.0,
                           poll_s: float = 0.1) -> None:
    """Until `/readyz` answers 200: 503 while the model loads."""
    url = f"http://127.0.0.1:{port}/readyz"
    async with asyncio.timeout(timeout_s):
        while await http_status(url) != 200:
            await asyncio.sleep(poll_s)


@asynccontextmanager
async def running_service(
    args: Sequence[str], env: Mapping[str, str] | None = None,
    start_timeout_s: float = 60.0, stop_timeout_s: float = 30.0,
    python: str | Path = sys.executable, cwd: Path = REPO_ROOT,
    own_group: bool = False,
) -> AsyncIterator[Service]:
    """`args` after `python`, e.g. ("-m", "ch04_streaming", "--port", "0").

    On exit the service gets SIGTERM; one still running `stop_timeout_s`
    later is killed, and `TimeoutError` raised. `python` and `cwd` run
    another installation than this checkout's, from another folder;
    `own_group` starts it in a process group of its own, as a terminal
    does, so a test can send Ctrl-C to the group.
    """
    process = await asyncio.create_subprocess_exec(
        python, *args, cwd=cwd, start_new_session=own_group,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        banner: list[str] = []
        async with asyncio.timeout(start_timeout_s):
            while not (found := LISTENING.search(
                    (line := await process.stdout.readline()).decode())):
                if not line:
                    raise RuntimeError(f"{' '.join(args)} exited at start")
                banner.append(line.decode())
        yield Service(process, int(found.group(1)), banner)
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            async with asyncio.timeout(stop_timeout_s):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise TimeoutError(f"{' '.join(args)} did not stop within"
                               f" {stop_timeout_s:g} s of SIGTERM") from None
