"""A WebTransport server in this process, for chapter 5's tests.

`running_wt_server` serves chapter 4's mock engine (zero-cost device,
loaded before the first session) at `/v1/realtime` on a free UDP port,
with a certificate made for the test, and shuts it down on the way out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.auth import ApiKeys
from ch04_streaming.engine import LocalMatching, MockRecognizer
from ch04_streaming.mock_matcher import Lexicon
from ch05_protocols.wt_certificate import PinnedCertificate, make_certificate
from ch05_protocols.wt_command import WtSettings, build_webtransport_server
from ch05_protocols.wt_server import WebTransportRoute, WebTransportServer
from tests.ch04.harness import KEY


@dataclass(frozen=True)
class RunningWt:
    server: WebTransportServer
    certificate: PinnedCertificate

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}/v1/realtime"


@asynccontextmanager
async def running_wt_server(lexicon: Lexicon,
                            settings: WtSettings | None = None,
                            ready: bool = True,
                            route: WebTransportRoute | None = None,
                            ) -> AsyncIterator[RunningWt]:
    """The served route (the realtime dialect) unless `route` says
    otherwise. The model is loaded before the first session unless
    `ready` is false; then it never is."""
    certificate = make_certificate(["127.0.0.1"], datetime.now(UTC))
    recognizer = MockRecognizer(LocalMatching(lexicon),
                                Accelerator(PROFILES["zero"]))
    built = build_webtransport_server(settings or WtSettings(), certificate,
                                      keys=ApiKeys.of(KEY),
                                      recognizer=recognizer, route=route)
    await built.server.listen("127.0.0.1", 0)
    if ready:
        await recognizer.start()
    try:
        yield RunningWt(built.server, certificate)
    finally:
        await built.server.shutdown()
        await recognizer.stop()
