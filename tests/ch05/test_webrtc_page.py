"""Chapter 4's page on the WebRTC service: the audio as the call's track.

Chapter 5, "WebRTC". The WebRTC service serves chapter 4's page and
answers its discovery requests, listing its one dialect over WebRTC.
In a real Chromium the page trades the typed key for a client secret,
plays a fixture (or its fake microphone) into the audio graph whose
output is the call's track, and must show the reference transcript as
finals, with latencies, the server's VAD state and a moving meter, in
each dialect the service can be run with. A refused key shows why.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page

import ch04_streaming
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.page_api import PAGE_FILES, FixtureLibrary
from ch04_streaming.settings import Settings
from ch05_protocols.rtc_client import call_stats
from ch05_protocols.rtc_settings import RtcSettings
from tests.ch04.harness import AUDIO_DIR, KEY, MANIFEST, audio_of
from tests.ch04.test_browser import WAIT_MS, chromium_page, texts
from tests.ch04.test_browser_page import WATCH, closed_status
from tests.ch05.rtc_harness import running_rtc

STATIC = Path(ch04_streaming.__file__).parent / "static"
FOX = "quick_brown_fox"
CALLS = "/v1/realtime/calls"
# The service's --dialect -> what /v1/dialects says of it.
DIALECTS = {"realtime": ("openai", "OpenAI Realtime"),
            "deepgram": ("deepgram", "Deepgram")}


def utterances(fixture_id: str) -> list[str]:
    return [u.text for u in MANIFEST.get(fixture_id).utterances]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_service_lists_its_dialect_over_webrtc(
    lexicon: Lexicon, dialect: str,
) -> None:
    name, label = DIALECTS[dialect]
    async with running_rtc(lexicon, RtcSettings(dialect=dialect)
                           ) as running, httpx.AsyncClient(
            base_url=running.url) as client:
        listed = await client.get("/v1/dialects")
        fixtures = await client.get("/v1/fixtures")
    assert listed.json() == {"type": "dialects", "dialects": [{
        "type": "dialect", "name": name, "label": label, "path": CALLS,
        "transport": "webrtc"}]}
    # Chapter 4's library, as chapter 4's service lists it.
    assert fixtures.json() == FixtureLibrary.load(
        AUDIO_DIR).listing.model_dump(mode="json")


async def test_the_pages_files_and_fixtures_are_served(
    lexicon: Lexicon,
) -> None:
    async with running_rtc(lexicon) as running, httpx.AsyncClient(
            base_url=running.url) as client:
        for path, (name, content_type) in PAGE_FILES.items():
            reply = await client.get(path)
            assert reply.status_code == 200, path
            assert reply.headers["content-type"] == content_type
            assert reply.content == (STATIC / name).read_bytes()
        wav = await client.get(f"/fixtures/{FOX}.wav")
        head = await client.head(f"/fixtures/{FOX}.wav")
        missing = [await client.get(path) for path in (
            "/fixtures/unknown.wav", "/fixtures/silence.wav",
            "/fixtures/manifest.json", "/fixtures/..%2Fmanifest.json")]
        posted = await client.post("/v1/dialects")
    assert (wav.status_code, wav.content) == (200, audio_of(FOX).read_bytes())
    assert wav.headers["content-type"] == "audio/wav"
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(wav.content))
    for reply in missing:
        assert reply.status_code == 404, reply.url
        assert set(reply.json()["error"]) == {"message", "type", "param",
                                              "code"}
    assert posted.status_code == 405
    assert set(posted.headers["allow"].split(", ")) == {"GET", "HEAD"}


async def started(page: Page) -> str:
    """Start, and return the status once streaming."""
    await page.wait_for_selector("#start:enabled")
    await page.evaluate(WATCH)
    await page.click("#start")
    await page.wait_for_function(
        "() => document.querySelector('#status').textContent"
        ".startsWith('streaming')", timeout=WAIT_MS)
    return str(await page.text_content("#status"))


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_fixture_plays_as_the_calls_track(
    lexicon: Lexicon, dialect: str,
) -> None:
    name, label = DIALECTS[dialect]
    async with running_rtc(lexicon, RtcSettings(dialect=dialect)
                           ) as running, chromium_page() as page:
        await page.goto(f"{running.url}/?key={KEY}&source={FOX}")
        await page.wait_for_selector("#start:enabled")
        options = await page.eval_on_selector_all(
            "#dialect option",
            "os => os.map(o => [o.value, o.textContent, o.disabled])")
        streaming = await started(page)
        await page.wait_for_function(
            "() => document.querySelector('#interim').textContent",
            timeout=WAIT_MS)
        # The fixture ends by itself, and the page ends the call.
        status = await closed_status(page)
        finals = await texts(page, "#finals .text")
        latencies = await texts(page, "#finals .latency")
        firsts = await texts(page, "#finals .first")
        vad_states = await page.evaluate("window.vadStates")
        loudest = await page.evaluate("window.loudestLevel")
        kind = await page.evaluate("window.credentialKind")
        stats = await call_stats(running.url, KEY,
                                 await page.evaluate("window.callId"))
    assert options == [[f"{name}-webrtc", f"{label} over WebRTC", False]]
    assert re.fullmatch(rf"streaming: \d+ Hz -> Opus over WebRTC"
                        rf" \(fixture {FOX}\)", streaming)
    assert finals == utterances(FOX)
    # Deepgram's server ends the stream it is asked to close; OpenAI's
    # does not, and the page hangs up once the last final is in.
    assert status == ("closed: the service ended the call"
                      if dialect == "deepgram" else
                      "closed: hung up by this page at the end of the input")
    assert "speech" in vad_states and "silence" in vad_states
    assert float(loudest) > 20
    assert kind == "client_secret"
    for latency in latencies:
        match = re.fullmatch(r"(\d+) ms", latency)
        assert match, latency
        assert int(match[1]) < 2_000
    assert all(re.fullmatch(r"first \d+ ms", f) for f in firsts), firsts
    assert_whole_call(stats, MANIFEST.get(FOX).duration_s)


def assert_whole_call(stats: dict[str, Any], duration_s: float) -> None:
    """Opus over a real peer connection, all of the audio received."""
    assert stats["codec"] == "opus/48000/2"
    assert stats["audio"]["received_s"] >= duration_s
    assert stats["audio"]["lost_s"] == 0


async def test_a_browser_microphone_comes_back_as_the_reference_text(
    lexicon: Lexicon,
) -> None:
    """Chromium's fake microphone plays a fixture; the page sends it on
    the call's track, through the same graph a fixture plays into."""
    fixture = "weather_forecast"
    async with running_rtc(lexicon) as running, chromium_page(
            audio_of(fixture)) as page:
        await page.goto(f"{running.url}/?key={KEY}")
        streaming = await started(page)
        await page.wait_for_function(
            "n => document.querySelectorAll('#finals .final').length >= n",
            arg=len(utterances(fixture)), timeout=WAIT_MS)
        finals = await texts(page, "#finals .text")
        stats = await call_stats(running.url, KEY,
                                 await page.evaluate("window.callId"))
        await page.click("#stop")
        status = await closed_status(page)
    assert re.fullmatch(r"streaming: \d+ Hz -> Opus over WebRTC", streaming)
    assert finals == utterances(fixture)
    assert (stats["codec"], stats["status"]) == ("opus/48000/2", "active")
    assert stats["jitter_buffer"]["frames"] > 0
    assert stats["audio"]["lost_s"] == 0
    assert status.startswith("closed: ")


async def test_a_call_the_service_ends_shows_its_code_and_reason(
    lexicon: Lexicon,
) -> None:
    """A data channel's close carries no code: the service's last event
    does, and the page shows it in words."""
    settings = RtcSettings(speech=Settings(max_session_s=2.0))
    async with running_rtc(lexicon, settings) as running, chromium_page(
            ) as page:
        await page.goto(f"{running.url}/?key={KEY}&source=support_call")
        await started(page)
        status = await closed_status(page)
    assert status == "closed: 1000 normal close: maximum session duration"


async def test_a_refused_key_is_told_why(lexicon: Lexicon) -> None:
    async with running_rtc(lexicon) as running, chromium_page() as page:
        await page.goto(f"{running.url}/?key=not-{KEY}&source={FOX}")
        await page.wait_for_selector("#start:enabled")
        await page.click("#start")
        await page.wait_for_function(
            "() => document.querySelector('#status').textContent"
            ".startsWith('error')", timeout=WAIT_MS)
        status = await page.text_content("#status")
        startable = await page.is_enabled("#start")
    assert status == "error: 401 Incorrect API key provided."
    assert startable  # the reader may correct the key and try again
