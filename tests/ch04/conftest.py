"""Chapter 4 test fixtures: a real server in this process, on a free port.

The server runs the mock engine with a zero-cost device and no cold
start unless a test asks otherwise, so tests wait on messages, never on
simulated time.
"""

from __future__ import annotations

from functools import partial

import pytest

from ch04_streaming.engine import load_lexicon
from ch04_streaming.mock_matcher import Lexicon
from examples.fixtures import MANIFEST_PATH
from tests.ch04.harness import Start, running_server


@pytest.fixture(scope="session")
def lexicon() -> Lexicon:
    return load_lexicon(MANIFEST_PATH)


@pytest.fixture
def start_server(lexicon: Lexicon) -> Start:
    """`running_server` on the session's lexicon: call it with `limits`,
    `defaults`, `device` or `ready` to change what it starts."""
    return partial(running_server, lexicon)
