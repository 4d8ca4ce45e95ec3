"""Chapter 5 test fixtures: chapter 4's server in this process, with
this chapter's two framings mounted beside its dialects."""

from __future__ import annotations

from functools import partial

import pytest

from ch04_streaming.app import dialects
from ch04_streaming.dialects.dialect import Dialect
from ch04_streaming.engine import load_lexicon
from ch04_streaming.mock_matcher import Lexicon
from ch05_protocols.ws_dialects import chapter5_dialects
from examples.fixtures import MANIFEST_PATH
from tests.ch04.harness import Start, running_server


@pytest.fixture(scope="session")
def lexicon() -> Lexicon:
    return load_lexicon(MANIFEST_PATH)


@pytest.fixture
def start_server(lexicon: Lexicon) -> Start:
    """`running_server` serving chapter 4's and chapter 5's dialects."""
    by_path: dict[str, Dialect] = {**dialects(), **chapter5_dialects()}
    return partial(running_server, lexicon, dialects_by_path=by_path)
