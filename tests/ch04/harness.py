"""Helpers for chapter 4 tests: a running server and the fixtures."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from ch04_streaming.engine import MockRecognizer
from ch04_streaming.server import SpeechServer
from examples.fixtures import MANIFEST_PATH, load_manifest

KEY = "test-key"
MANIFEST = load_manifest()
AUDIO_DIR = MANIFEST_PATH.parent


@dataclass
class Running:
    server: SpeechServer
    recognizer: MockRecognizer

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


Start = Callable[..., AbstractAsyncContextManager[Running]]


def audio_of(fixture_id: str) -> Path:
    return AUDIO_DIR / Path(MANIFEST.get(fixture_id).path).name


def reference(fixture_id: str) -> str:
    return MANIFEST.get(fixture_id).text
