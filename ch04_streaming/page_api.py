"""What the browser page asks the server before it streams.

Chapter 4, "End-to-end architecture": the page discovers what the
server offers instead of assuming it. `GET /v1/dialects` lists the
dialects this server speaks, read from its own map of paths, so a
dialect a later chapter mounts is listed the moment it is served.
`GET /v1/fixtures` lists the sample recordings a browser can decode and
play as if from its microphone (16-bit PCM WAV, mono, with speech), and
`GET /fixtures/<id>.wav` serves one of them, and nothing else: a path
is looked up among the URLs listed, never joined to a directory, so no
spelling of `..` or an encoded slash reaches a file. The library is
read once, at start, from a directory's `manifest.json`; a missing or
invalid one leaves the list empty, with one warning, and the streams
are served all the same. No file over `MAX_FIXTURE_BYTES` is listed or
served. Every body is a typed message whose `type` says what it is.
`page_reply` answers all three, and `page_file` the page's own files,
for every service that serves the page, each in its own framework and
error shape.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from ch04_streaming.dialects.dialect import Dialect
from ch04_streaming.settings import fixture_file
from ch04_streaming.wire import WireMessage

log = logging.getLogger("ch04_streaming")

DIALECTS_PATH = "/v1/dialects"
FIXTURES_PATH = "/v1/fixtures"
FIXTURE_PREFIX = "/fixtures/"
MANIFEST_NAME = "manifest.json"
# The longest sample is 44 s of 16 kHz PCM, 1.4 MB; 20 MiB is over
# ten minutes of it, and a bound on what one request makes us read.
MAX_FIXTURE_BYTES = 20 * 1024 * 1024
# Ids become URLs as they are: letters, digits, `_` and `-` only.
URL_SAFE_ID = re.compile(r"[A-Za-z0-9_-]+")
PAGE_PATHS = (DIALECTS_PATH, FIXTURES_PATH)
METHODS = ("GET", "HEAD")  # HEAD: the same headers, no body
JAVASCRIPT = "text/javascript; charset=utf-8"
# URL path -> (file in ch04_streaming/static, its content type)
PAGE_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
              **{f"/{name}": (name, JAVASCRIPT) for name in (
                  "client.js", "capture-worklet.js", "dialects.js",
                  "fixture-player.js", "close-codes.js", "websocket.js",
                  "webrtc.js")}}


class DialectInfo(WireMessage):
    type: Literal["dialect"] = "dialect"
    name: str  # stable, for code: "deepgram"
    label: str  # for people: "Deepgram"
    path: str  # the WebSocket's, or where a WebRTC offer is POSTed
    transport: Literal["websocket", "webrtc"] = "websocket"


class DialectList(WireMessage):
    type: Literal["dialects"] = "dialects"
    dialects: list[DialectInfo]


class FixtureInfo(WireMessage):
    type: Literal["fixture"] = "fixture"
    id: str
    text: str  # the reference transcript
    duration_s: float
    sample_rate: int
    url: str


class FixtureList(WireMessage):
    type: Literal["fixtures"] = "fixtures"
    fixtures: list[FixtureInfo]


class ManifestEntry(BaseModel):
    """What this module reads of a manifest's fixture; the rest (word
    times, hashes, voices) is the tests' and the mock engine's."""

    id: str
    path: str  # from the repository root; the file sits by the manifest
    container: str
    encoding: str
    sample_rate: int
    channels: int
    duration_s: float
    text: str

    @property
    def playable(self) -> bool:
        """Decodable by any browser, with speech in it."""
        return (self.container == "wav" and self.encoding == "linear16"
                and self.channels == 1 and bool(self.text.strip())
                and URL_SAFE_ID.fullmatch(self.id) is not None)


class ManifestFile(BaseModel):
    fixtures: list[ManifestEntry]


def dialect_list(dialects: Mapping[str, Dialect]) -> DialectList:
    """Every dialect a server maps, in the map's order."""
    return DialectList(dialects=[
        DialectInfo(name=d.name, label=d.label, path=path)
        for path, d in dialects.items()])


def page_file(path: str) -> tuple[bytes, str] | None:
    """The page's file served at `path`, and its content type."""
    if path not in PAGE_FILES:
        return None
    name, content_type = PAGE_FILES[path]
    static = resources.files("ch04_streaming.static")
    return static.joinpath(name).read_bytes(), content_type


@dataclass(frozen=True)
class Fixture:
    info: FixtureInfo
    file: Path


@dataclass(frozen=True)
class FixtureLibrary:
    """The recordings the page may play, by the URL each is served at."""

    fixtures: tuple[Fixture, ...] = ()
    max_bytes: int = MAX_FIXTURE_BYTES

    @property
    def listing(self) -> FixtureList:
        return FixtureList(fixtures=[f.info for f in self.fixtures])

    def at(self, url_path: str) -> Fixture | None:
        """The fixture served at exactly this path, if one is."""
        return next((f for f in self.fixtures if f.info.url == url_path),
                    None)

    @classmethod
    def load(cls, directory: Path,
             max_bytes: int = MAX_FIXTURE_BYTES) -> FixtureLibrary:
        """The playable fixtures of `directory`'s manifest whose files
        are there and small enough; none, with a warning, when the
        manifest cannot be read."""
        manifest = directory / MANIFEST_NAME
        try:
            entries = ManifestFile.model_validate_json(
                manifest.read_bytes()).fixtures
        except (OSError, ValidationError) as error:
            first_line = (str(error).splitlines() or [repr(error)])[0]
            log.warning("event=no_fixtures manifest=%s error=%s",
                        manifest, first_line)
            return cls(max_bytes=max_bytes)
        playable = [e for e in entries if e.playable]
        return cls(tuple(servable(manifest, playable, max_bytes)),
                   max_bytes)


def servable(manifest: Path, entries: Iterable[ManifestEntry],
             max_bytes: int) -> Iterable[Fixture]:
    """Fixtures whose files exist and are at most `max_bytes`, each id
    once; every other one is left out with a warning."""
    seen: set[str] = set()
    for entry in entries:
        file = fixture_file(manifest, entry.path)
        size = file.stat().st_size if file.is_file() else None
        if entry.id in seen or size is None or size > max_bytes:
            why = ("a repeated id" if entry.id in seen
                   else "missing" if size is None else f"{size} bytes")
            log.warning("event=fixture_skipped id=%s file=%s reason=%s"
                        " max_bytes=%d", entry.id, file, why, max_bytes)
            continue
        seen.add(entry.id)
        yield Fixture(FixtureInfo(
            id=entry.id, text=entry.text, duration_s=entry.duration_s,
            sample_rate=entry.sample_rate,
            url=f"{FIXTURE_PREFIX}{entry.id}.wav"), file)


class FixtureReadError(Exception):
    """Why a listed fixture's bytes are not served: a status, a reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def read_bounded(file: Path, max_bytes: int) -> bytes:
    """The file's bytes, if it is still there and still small enough."""
    try:
        with file.open("rb") as stream:
            body = stream.read(max_bytes + 1)
    except OSError:
        raise FixtureReadError(
            404, f"fixture file {file.name} is gone") from None
    if len(body) > max_bytes:
        raise FixtureReadError(
            500, f"fixture file {file.name} is over the {max_bytes}-byte"
            " limit on fixtures served")
    return body


async def wav_bytes(fixture: Fixture, max_bytes: int) -> bytes:
    """A fixture's file, read once per request, off the event loop."""
    return await asyncio.to_thread(read_bounded, fixture.file, max_bytes)


@dataclass(frozen=True)
class PageReply:
    """An answer for the server to send: a 200's body and its type, or
    an error's status and reason, which each server words in its own
    shape. `length` is the body's, also for HEAD, which sends none."""

    status: int
    body: bytes = b""
    content_type: str = ""
    length: int = 0
    reason: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


async def page_reply(method: str, path: str, dialects: DialectList,
                     fixtures: FixtureLibrary) -> PageReply | None:
    """The answer to what the page asks before it streams: the dialects
    served, the fixtures it may play, and their files, to GET (or HEAD);
    None for any other path."""
    fixture = fixtures.at(path)
    if path not in PAGE_PATHS and fixture is None:
        return None
    if method not in METHODS:
        return PageReply(405, reason=f"{method} {path}: use GET or HEAD",
                         headers={"Allow": ", ".join(METHODS)})
    content_type = "application/json"
    if path == DIALECTS_PATH:
        body = dialects.to_json().encode()
    elif path == FIXTURES_PATH:
        body = fixtures.listing.to_json().encode()
    else:
        assert fixture is not None
        try:
            body = await wav_bytes(fixture, fixtures.max_bytes)
        except FixtureReadError as refused:
            return PageReply(refused.status, reason=refused.reason)
        content_type = "audio/wav"
    return PageReply(200, body if method == "GET" else b"", content_type,
                     len(body))
