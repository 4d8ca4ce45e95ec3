"""What the browser page asks before it streams: dialects and fixtures.

Chapter 4's server, built by its composition root, answers
`/v1/dialects` from its own map of dialects (a mounted dialect is
listed too), `/v1/fixtures` with the manifest's recordings a browser
can decode and that hold speech, and `/fixtures/<id>.wav` with exactly
those files' bytes; every other path under `/fixtures/` is a 404 with
the server's JSON error. Without a readable fixtures directory the list
is empty and the streams are served all the same.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.app import build_server, fixtures_dir
from ch04_streaming.auth import ApiKeys
from ch04_streaming.client import DIALECTS, load_audio, stream
from ch04_streaming.dialects.dialect import Dialect
from ch04_streaming.engine import LocalMatching, MockRecognizer
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.page_api import FixtureLibrary
from ch04_streaming.server import SpeechServer
from ch04_streaming.settings import parse_settings
from ch05_protocols.ws_dialects import BASE64, chapter5_dialects
from examples.fixtures import MANIFEST_PATH
from tests.ch04.harness import (
    KEY,
    MANIFEST,
    audio_of,
    fetch,
    reference,
)

FOX = "quick_brown_fox"
# Chapter 4's three dialects, as its README names them, in the order
# `app.dialects` maps them.
CHAPTER_4 = [("deepgram", "Deepgram", "/v1/listen"),
             ("assemblyai", "AssemblyAI", "/v3/ws"),
             ("openai", "OpenAI Realtime", "/v1/realtime")]


@asynccontextmanager
async def chapter_4(lexicon: Lexicon, *flags: str,
                    more_dialects: Mapping[str, Dialect] | None = None,
                    ) -> AsyncIterator[SpeechServer]:
    """Chapter 4's server as `build_server` composes it, with `flags`,
    on the mock engine matching on a zero-cost device."""
    settings = parse_settings(["--load-s", "0", "--warmup-s", "0",
                               *flags], env={})
    recognizer = MockRecognizer(LocalMatching(lexicon),
                                Accelerator(PROFILES["zero"]))
    built = build_server(settings, ApiKeys.of(KEY),
                         recognizer=recognizer,
                         more_dialects=more_dialects)
    await built.server.start("127.0.0.1", 0)
    await recognizer.start()
    try:
        yield built.server
    finally:
        await built.server.shutdown()
        await recognizer.stop()


def listed(body: Any) -> list[tuple[str, str, str]]:
    assert body["type"] == "dialects"
    for dialect in body["dialects"]:
        assert (dialect["type"], dialect["transport"]) == (
            "dialect", "websocket")
    return [(d["name"], d["label"], d["path"]) for d in body["dialects"]]


def playable_ids() -> list[str]:
    """The manifest's fixtures a browser decodes (16-bit PCM WAV, one
    channel) that hold speech, in the manifest's order: worked out from
    the manifest here, by its own catalogue's records."""
    return [f.id for f in MANIFEST.fixtures
            if (f.container, f.encoding, f.channels) == ("wav", "linear16",
                                                         1)
            and f.text.strip()]


async def test_chapter_4_lists_its_three_dialects(lexicon: Lexicon) -> None:
    async with chapter_4(lexicon) as server:
        reply = await fetch(server, "/v1/dialects")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert listed(reply.json()) == CHAPTER_4


async def test_a_dialect_mounted_later_is_listed_too(
    lexicon: Lexicon,
) -> None:
    """Chapter 5's two framings after chapter 4's three, as the map
    holds them; and a made-up one, to show nothing is hard-coded."""
    made_up = replace(BASE64, name="made-up", label="Made Up",
                      path="/v9/made-up")
    mounted = {**chapter5_dialects(), made_up.path: made_up}
    async with chapter_4(lexicon, more_dialects=mounted) as server:
        reply = await fetch(server, "/v1/dialects")
    assert listed(reply.json()) == [
        *CHAPTER_4,
        ("ws-binary", "Binary WebSocket", "/ws/binary"),
        ("ws-base64", "Base64 JSON WebSocket", "/ws/base64"),
        ("made-up", "Made Up", "/v9/made-up")]


async def test_fixtures_are_the_manifests_playable_speech(
    lexicon: Lexicon,
) -> None:
    async with chapter_4(lexicon) as server:
        reply = await fetch(server, "/v1/fixtures")
    assert reply.status == 200
    body = reply.json()
    assert body["type"] == "fixtures"
    ids = [f["id"] for f in body["fixtures"]]
    assert ids == playable_ids()
    # By hand, from examples/audio/: silence and noise hold no speech;
    # FLAC, Ogg Opus and mu-law are not 16-bit PCM WAV.
    assert FOX in ids and "support_call" in ids
    assert not {"silence", "noise", "quick_brown_fox_flac",
                "quick_brown_fox_opus", "quick_brown_fox_8k_mulaw"} & set(ids)
    for fixture in body["fixtures"]:
        record = MANIFEST.get(fixture["id"])
        assert fixture == {
            "type": "fixture", "id": record.id, "text": record.text,
            "duration_s": record.duration_s,
            "sample_rate": record.sample_rate,
            "url": f"/fixtures/{record.id}.wav"}


async def test_a_fixtures_bytes_are_its_files(lexicon: Lexicon) -> None:
    async with chapter_4(lexicon) as server:
        fixtures = (await fetch(server, "/v1/fixtures")).json()["fixtures"]
        for fixture in fixtures:
            wav = audio_of(fixture["id"]).read_bytes()
            got = await fetch(server, fixture["url"])
            assert (got.status, got.body) == (200, wav), fixture["id"]
            assert got.headers["Content-Type"] == "audio/wav"
            assert got.headers["Content-Length"] == str(len(wav))
        head = await fetch(server, f"/fixtures/{FOX}.wav", "HEAD")
    assert (head.status, head.body) == (200, b"")
    assert head.headers["Content-Length"] == str(
        audio_of(FOX).stat().st_size)


# Each names no listed fixture: ids the manifest has but that are not
# playable, other names and extensions, and every way of spelling a
# step out of the directory or into another.
BAD_PATHS = [
    "/fixtures/unknown.wav",
    "/fixtures/silence.wav",
    "/fixtures/quick_brown_fox_flac.wav",
    "/fixtures/quick_brown_fox_8k_mulaw.wav",
    "/fixtures/quick_brown_fox.flac",
    "/fixtures/quick_brown_fox.WAV",
    "/fixtures/QUICK_BROWN_FOX.wav",
    "/fixtures/quick_brown_fox",
    "/fixtures/quick_brown_fox.wav/",
    "/fixtures/quick_brown_fox%2Ewav",
    "/fixtures/quick_brown_fox.wav%00",
    "/fixtures/",
    "/fixtures",
    "/fixtures/manifest.json",
    "/fixtures/quick_brown_fox_flac.flac",
    "/fixtures/../manifest.json",
    "/fixtures/../audio/quick_brown_fox.wav",
    "/fixtures/..%2Fmanifest.json",
    "/fixtures/%2e%2e/manifest.json",
    "/fixtures/%2e%2e%2fmanifest.json",
    "/fixtures/x%2Fquick_brown_fox.wav",
    "/fixtures//quick_brown_fox.wav",
    "/fixtures/./quick_brown_fox.wav",
    "/v1/fixtures/quick_brown_fox.wav",
    "/examples/audio/quick_brown_fox.wav",
]


async def test_every_other_fixture_path_is_a_404(lexicon: Lexicon) -> None:
    async with chapter_4(lexicon) as server:
        for path in BAD_PATHS:
            reply = await fetch(server, path)
            assert reply.status == 404, path
            assert reply.headers["Content-Type"] == "application/json"
            assert reply.json() == {"type": "Error", "status": 404,
                                    "reason": f"no such path: {path}"}


async def test_only_get_and_head_are_answered(lexicon: Lexicon) -> None:
    async with chapter_4(lexicon) as server:
        for path in ("/v1/dialects", "/v1/fixtures", f"/fixtures/{FOX}.wav"):
            get = await fetch(server, path)
            head = await fetch(server, path, "HEAD")
            assert (head.status, head.body) == (200, b"")
            assert head.headers["Content-Length"] == str(len(get.body))
            for method in ("POST", "PUT", "DELETE"):
                reply = await fetch(server, path, method)
                assert reply.status == 405, (method, path)
                assert reply.headers["Allow"] == "GET, HEAD"
                assert reply.json()["type"] == "Error"


async def test_without_fixtures_the_list_is_empty_and_streams_go_on(
    lexicon: Lexicon, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    absent = tmp_path / "absent"
    with caplog.at_level(logging.WARNING, logger="ch04_streaming"):
        async with chapter_4(lexicon, "--fixtures-dir",
                             str(absent)) as server:
            listing = await fetch(server, "/v1/fixtures")
            wav = await fetch(server, f"/fixtures/{FOX}.wav")
            report = await stream(f"ws://127.0.0.1:{server.port}",
                                  DIALECTS["deepgram"], KEY,
                                  load_audio(audio_of("call_back")))
    assert (listing.status, listing.json()) == (
        200, {"type": "fixtures", "fixtures": []})
    assert wav.status == 404
    assert report.transcript == reference("call_back")
    warnings = [r for r in caplog.records if "no_fixtures" in r.message]
    assert len(warnings) == 1  # once, at start; not per request
    assert str(absent) in warnings[0].getMessage()


def copy_fixtures(directory: Path, manifest: Mapping[str, Any],
                  ids: list[str]) -> None:
    """A fixtures directory holding `ids` from the real manifest."""
    directory.mkdir()
    entries = [f for f in manifest["fixtures"] if f["id"] in ids]
    for entry in entries:
        shutil.copy(audio_of(entry["id"]), directory)
    (directory / "manifest.json").write_text(
        json.dumps({**manifest, "fixtures": entries}))


@pytest.mark.parametrize("text", ["{not json", '{"fixtures": [{"id": 1}]}',
                                  '{"fixtures": "none"}', "[]"])
def test_an_invalid_manifest_lists_nothing(tmp_path: Path,
                                           text: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    assert FixtureLibrary.load(tmp_path).fixtures == ()


def test_files_missing_or_over_the_cap_are_not_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    manifest = json.loads(MANIFEST_PATH.read_text())
    directory = tmp_path / "audio"
    copy_fixtures(directory, manifest, [FOX, "call_back", "low_latency"])
    (directory / "low_latency.wav").unlink()
    # A cap between the two files' sizes: the smaller one is listed.
    fox, call_back = (audio_of(i).stat().st_size for i in (FOX,
                                                           "call_back"))
    cap = (fox + call_back) // 2
    small, large = sorted([(fox, FOX), (call_back, "call_back")])
    assert small[0] <= cap < large[0]
    with caplog.at_level(logging.WARNING, logger="ch04_streaming"):
        library = FixtureLibrary.load(directory, max_bytes=cap)
    assert [f.info.id for f in library.fixtures] == [small[1]]
    skipped = " ".join(r.getMessage() for r in caplog.records)
    assert f"id={large[1]}" in skipped and "id=low_latency" in skipped


def test_a_repeated_id_is_listed_once(tmp_path: Path) -> None:
    manifest = json.loads(MANIFEST_PATH.read_text())
    copy_fixtures(tmp_path / "audio", manifest, [FOX])
    written = json.loads((tmp_path / "audio" / "manifest.json").read_text())
    (fox,) = written["fixtures"]
    (tmp_path / "audio" / "manifest.json").write_text(json.dumps(
        {**written, "fixtures": [fox, {**fox, "text": "another"}]}))
    library = FixtureLibrary.load(tmp_path / "audio")
    assert [(f.info.id, f.info.text) for f in library.fixtures] == [
        (FOX, reference(FOX))]


async def test_a_file_grown_past_the_cap_is_refused_clearly(
    lexicon: Lexicon, tmp_path: Path,
) -> None:
    manifest = json.loads(MANIFEST_PATH.read_text())
    directory = tmp_path / "audio"
    copy_fixtures(directory, manifest, [FOX])
    size = audio_of(FOX).stat().st_size
    async with chapter_4(lexicon) as server:
        server.fixtures = FixtureLibrary.load(directory, max_bytes=size)
        assert (await fetch(server, f"/fixtures/{FOX}.wav")).status == 200
        with (directory / f"{FOX}.wav").open("ab") as wav:
            wav.write(b"\0")  # one byte over the cap
        grown = await fetch(server, f"/fixtures/{FOX}.wav")
        (directory / f"{FOX}.wav").unlink()
        gone = await fetch(server, f"/fixtures/{FOX}.wav")
    assert grown.status == 500
    assert f"over the {size}-byte limit" in grown.json()["reason"]
    assert gone.status == 404


def test_the_fixtures_are_the_sample_audio_unless_set() -> None:
    default = parse_settings([], env={})
    assert fixtures_dir(default) == MANIFEST_PATH.parent
    assert fixtures_dir(default) == (
        Path(__file__).resolve().parents[2] / "examples" / "audio")
    by_env = parse_settings([], env={"CH04_FIXTURES_DIR": "/srv/a"})
    by_flag = parse_settings(["--fixtures-dir", "/srv/b"],
                             env={"CH04_FIXTURES_DIR": "/srv/a"})
    assert fixtures_dir(by_env) == Path("/srv/a")
    assert fixtures_dir(by_flag) == Path("/srv/b")
