"""Helpers for chapter 4 tests: a running server and the audio fixtures.

`running_server` is what the `start_server` fixture starts; chapter 8's
tests start it too, with their hooks, since fixtures of this directory's
conftest are not theirs to use.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from ssl import SSLContext
from typing import Any

import numpy as np

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.app import dialects, session_factory
from ch04_streaming.audio import AudioDecoder, Encoding
from ch04_streaming.auth import ApiKeys, KeyCheck
from ch04_streaming.backpressure import PendingAudioCap
from ch04_streaming.client import load_audio
from ch04_streaming.dialects.dialect import Dialect, StreamDefaults
from ch04_streaming.engine import LocalMatching, MockRecognizer, NullRecognizer
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.page_api import FixtureLibrary
from ch04_streaming.scheduler import DirectScheduler
from ch04_streaming.server import HttpRoute, ServerLimits, SpeechServer
from ch04_streaming.session import SessionEvent, StreamOptions, StreamSession
from ch04_streaming.stream_hooks import NoHooks, StreamHooks
from ch04_streaming.vad import VadConfig, build_vad_gate
from examples.fixtures import MANIFEST_PATH, load_manifest

KEY = "test-key"
MANIFEST = load_manifest()
AUDIO_DIR = MANIFEST_PATH.parent


@dataclass
class Running:
    server: SpeechServer
    recognizer: MockRecognizer
    # served over TLS (chapter 9); by keyword, so subclasses may add
    # fields without defaults
    secure: bool = field(default=False, kw_only=True)

    @property
    def url(self) -> str:
        scheme = "wss" if self.secure else "ws"
        return f"{scheme}://127.0.0.1:{self.server.port}"

    @property
    def http(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"{scheme}://127.0.0.1:{self.server.port}"


Start = Callable[..., AbstractAsyncContextManager[Running]]


@asynccontextmanager
async def running_server(
    lexicon: Lexicon,
    limits: ServerLimits | None = None,
    defaults: StreamDefaults | None = None,
    device: Accelerator | None = None,
    ready: bool = True,
    hooks: StreamHooks | None = None,
    keys: tuple[str, ...] = (KEY,),
    dialects_by_path: dict[str, Dialect] | None = None,
    key_check: KeyCheck | None = None,
    routes: dict[str, HttpRoute] | None = None,
    sock: socket.socket | None = None,
    ssl: SSLContext | None = None,
) -> AsyncIterator[Running]:
    """A server in this process on a free port (or `sock`, listening
    already), shut down on the way out, with the sample fixtures for
    the browser page.

    The mock engine runs on a zero-cost device unless `device` says
    otherwise, and is loaded already unless `ready` is false. Its keys
    are `keys`, unless a `key_check` (chapter 9's store) is given; with
    `ssl` it serves over TLS (chapter 9), at wss:// and https://.
    """
    recognizer = MockRecognizer(
        LocalMatching(lexicon), device or Accelerator(PROFILES["zero"])
    )
    limits = limits or ServerLimits()
    server = SpeechServer(
        dialects_by_path or dialects(), recognizer,
        session_factory(DirectScheduler(recognizer), limits.connection),
        key_check or ApiKeys.of(*keys), defaults or StreamDefaults(),
        limits, hooks or NoHooks(), routes or {},
        fixtures=FixtureLibrary.load(AUDIO_DIR))
    await server.start("127.0.0.1", 0, sock=sock, ssl=ssl)
    if ready:
        await recognizer.start()
    try:
        yield Running(server, recognizer, secure=ssl is not None)
    finally:
        await server.shutdown()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def fetch(server: SpeechServer, path: str,
                method: str = "GET") -> Reply:
    """One request with `path` sent exactly as written: http.client
    neither normalises `..` nor decodes `%2F`."""
    def send() -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", server.port,
                                                timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return Reply(response.status, dict(response.getheaders()),
                         response.read())
        finally:
            connection.close()

    return await asyncio.to_thread(send)


def audio_of(fixture_id: str) -> Path:
    return AUDIO_DIR / Path(MANIFEST.get(fixture_id).path).name


def reference(fixture_id: str) -> str:
    return MANIFEST.get(fixture_id).text


def pcm16_of(fixture_id: str) -> np.ndarray:
    """A fixture's 16-bit samples at its own rate."""
    return np.frombuffer(load_audio(audio_of(fixture_id)).payload, "<i2")


def interleave(*channels: np.ndarray) -> np.ndarray:
    """Channels padded with silence to the longest, then interleaved:
    one sample of each channel per sample frame."""
    longest = max(c.size for c in channels)
    padded = [np.pad(c, (0, longest - c.size)) for c in channels]
    return np.stack(padded, axis=1).reshape(-1)


def new_session(events: list[SessionEvent],
                cap: PendingAudioCap | None = None) -> StreamSession:
    """A session on a model that decodes nothing, its events collected:
    for tests of the session core itself."""
    return StreamSession(
        options=StreamOptions(interim_results=True),
        scheduler=DirectScheduler(
            NullRecognizer(Accelerator(PROFILES["zero"]))),
        audio=AudioDecoder(Encoding.LINEAR16, 16_000),
        vad=build_vad_gate(VadConfig()),
        emit=events.append,
        cap=cap or PendingAudioCap(max_s=10.0),
    )
