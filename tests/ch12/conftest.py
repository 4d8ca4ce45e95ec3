"""Chapter 12 test fixtures: the sample speech's lexicon, built once."""

from __future__ import annotations

import pytest

from ch04_streaming.engine import load_lexicon
from ch04_streaming.mock_matcher import Lexicon
from examples.fixtures import MANIFEST_PATH


@pytest.fixture(scope="session")
def lexicon() -> Lexicon:
    return load_lexicon(MANIFEST_PATH)
