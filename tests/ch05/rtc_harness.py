"""The WebRTC service in this process, on a free port, for the tests.

uvicorn serves `create_rtc_app` on a socket bound to port 0 and
listening before uvicorn starts, so a client may connect at once: it
waits in the backlog until the app has started. The engine is chapter
4's mock on a zero-cost device, started before the app, so calls are
admitted from the first request.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.auth import ApiKeys
from ch04_streaming.dialects.dialect import Dialect
from ch04_streaming.engine import LocalMatching, MockRecognizer
from ch04_streaming.mock_matcher import Lexicon
from ch05_protocols.rtc_app import RtcParts, Server, create_rtc_app
from ch05_protocols.rtc_calls import RtcCalls
from ch05_protocols.rtc_settings import RtcSettings
from tests.ch04.harness import KEY

STOP_TIMEOUT_S = 30.0


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class RunningRtc:
    url: str
    calls: RtcCalls
    clock: FakeClock


@asynccontextmanager
async def running_rtc(
    lexicon: Lexicon, settings: RtcSettings | None = None,
    dialect: Dialect | None = None,
    clock: Callable[[], float] | None = None,
) -> AsyncIterator[RunningRtc]:
    """The service, stopped (its calls drained) on the way out."""
    recognizer = MockRecognizer(LocalMatching(lexicon),
                                Accelerator(PROFILES["zero"]))
    await recognizer.start()
    fake = FakeClock()
    app = create_rtc_app(settings or RtcSettings(), RtcParts(
        recognizer=recognizer, keys=ApiKeys.of(KEY), dialect=dialect,
        secrets_clock=clock or fake))
    server = Server(uvicorn.Config(app, log_level="warning"))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        try:
            yield RunningRtc(f"http://127.0.0.1:{port}", app.state.calls,
                             fake)
        finally:
            server.should_exit = True
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await serving
