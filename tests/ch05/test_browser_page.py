"""Chapter 4's page on chapter 5's two framings of one protocol.

Chapter 5, "WebSocket for audio: binary framing". Served by chapter 4's
server with chapter 5's `/ws/binary` and `/ws/base64` mounted beside
the providers' dialects, the page lists all five as dialects it can
speak; in a real Chromium, a fixture played in either framing must
show its reference transcript as finals, and a refused key its reason.
"""

from __future__ import annotations

import re

import pytest

from tests.ch04.harness import KEY, MANIFEST, Start
from tests.ch04.test_browser import chromium_page, texts
from tests.ch04.test_browser_page import (
    REFUSED,
    WATCH,
    closed_status,
    status_with_a_wrong_key,
)

FRAMINGS = ["ws-binary", "ws-base64"]


async def test_the_page_can_speak_every_dialect_listed(
    start_server: Start,
) -> None:
    async with start_server() as running, chromium_page() as page:
        await page.goto(f"{running.http}/?key={KEY}")
        await page.wait_for_selector("#start:enabled")
        dialects = await page.eval_on_selector_all(
            "#dialect option",
            "os => os.map(o => [o.value, o.textContent, o.disabled])")
    assert dialects == [
        ["deepgram", "Deepgram", False],
        ["assemblyai", "AssemblyAI", False],
        ["openai", "OpenAI Realtime", False],
        ["ws-binary", "Binary WebSocket", False],
        ["ws-base64", "Base64 JSON WebSocket", False]]


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_a_fixture_plays_in_each_framing(
    start_server: Start, framing: str,
) -> None:
    fixture = MANIFEST.get("weather_forecast")
    async with start_server() as running, chromium_page() as page:
        await page.goto(f"{running.http}/?key={KEY}&dialect={framing}"
                        f"&source={fixture.id}")
        await page.wait_for_selector("#start:enabled")
        await page.evaluate(WATCH)
        await page.click("#start")
        status = await closed_status(page)
        finals = await texts(page, "#finals .text")
        latencies = await texts(page, "#finals .latency")
        firsts = await texts(page, "#finals .first")
        vad_states = await page.evaluate("window.vadStates")
    assert finals == [u.text for u in fixture.utterances]
    assert status == "closed: 1000 normal close"
    assert all(re.fullmatch(r"\d+ ms", x) for x in latencies), latencies
    assert all(re.fullmatch(r"first \d+ ms", x) for x in firsts), firsts
    assert "speech" in vad_states and "silence" in vad_states


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_a_refused_key_shows_the_reason(
    start_server: Start, framing: str,
) -> None:
    assert await status_with_a_wrong_key(start_server, framing) == REFUSED
