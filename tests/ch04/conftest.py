"""Chapter 4 test fixtures: a real server in this process, on a free port.

The server runs the mock engine with a zero-cost device and no cold
start unless a test asks otherwise, so tests wait on messages, never on
simulated time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from ch04_streaming.accelerator import PROFILES, Accelerator
from ch04_streaming.acoustic import Lexicon
from ch04_streaming.app import dialects
from ch04_streaming.auth import ApiKeys
from ch04_streaming.dialects.dialect import StreamDefaults
from ch04_streaming.engine import MockRecognizer, load_lexicon
from ch04_streaming.server import ServerLimits, SpeechServer
from ch04_streaming.stream_handler import ConnectionLimits
from examples.fixtures import MANIFEST_PATH
from tests.ch04.harness import KEY, Running, Start


@pytest.fixture(scope="session")
def lexicon() -> Lexicon:
    return load_lexicon(MANIFEST_PATH)


@pytest.fixture
def start_server(lexicon: Lexicon) -> Start:
    @asynccontextmanager
    async def start(
        limits: ServerLimits | None = None,
        defaults: StreamDefaults | None = None,
        device: Accelerator | None = None,
        ready: bool = True,
    ) -> AsyncIterator[Running]:
        recognizer = MockRecognizer(
            lexicon, device or Accelerator(PROFILES["zero"])
        )
        limits = limits or ServerLimits(connection=ConnectionLimits(
            realtime_allowance_s=1e9))  # most tests send faster
        server = SpeechServer(dialects(), recognizer, ApiKeys.of(KEY),
                              defaults or StreamDefaults(), limits)
        await server.start("127.0.0.1", 0)
        if ready:
            await recognizer.start()
        try:
            yield Running(server, recognizer)
        finally:
            await server.shutdown()

    return start
