"""The page a reader demos: every dialect, fixtures, meter, VAD, closes.

Chapter 4, "End-to-end architecture". In a real Chromium, with no
microphone at all: the page lists the dialects the server says it
offers, plays a sample fixture into its capture worklet at real time,
and must show the fixture's reference transcript as finals in each
dialect, with latencies, a time to first result per utterance against
the 300 ms rule, a moving level meter and the server's VAD state. A
refused key shows why, in words. A screenshot of the page in mid-stream
is kept in build/screenshots/ for the chapter's README.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.ch04.harness import KEY, MANIFEST, Start
from tests.ch04.test_browser import WAIT_MS, chromium_page, texts

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "build" / "screenshots" / "ch04-page.png"
DIALECTS = ["deepgram", "assemblyai", "openai"]

# Every change of the VAD state, kept by the page itself so the test
# misses none between two looks.
WATCH = """() => {
  window.vadStates = [];
  new MutationObserver(() => {
    const state = document.querySelector('#vad').dataset.state;
    if (state) window.vadStates.push(state);
  }).observe(document.querySelector('#vad'), { attributes: true });
}"""


async def closed_status(page: Page) -> str:
    await page.wait_for_function(
        "() => document.querySelector('#status').textContent"
        ".startsWith('closed')", timeout=WAIT_MS)
    return str(await page.text_content("#status"))


async def test_the_page_lists_what_the_server_offers(
    start_server: Start,
) -> None:
    async with start_server() as running, chromium_page() as page:
        await page.goto(f"{running.http}/?key={KEY}")
        await page.wait_for_selector("#start:enabled")
        dialects = await page.eval_on_selector_all(
            "#dialect option", "os => os.map(o => [o.value, o.disabled])")
        sources = await page.eval_on_selector_all(
            "#source option", "os => os.map(o => o.value)")
    assert dialects == [[name, False] for name in DIALECTS]
    assert sources[0] == "microphone"
    assert "quick_brown_fox" in sources and "weather_forecast" in sources


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_fixture_plays_as_a_microphone_in_every_dialect(
    start_server: Start, dialect: str,
) -> None:
    fixture = MANIFEST.get("quick_brown_fox")
    async with start_server() as running, chromium_page() as page:
        await page.goto(f"{running.http}/?key={KEY}&dialect={dialect}"
                        "&source=quick_brown_fox")
        await page.wait_for_selector("#start:enabled")
        await page.evaluate(WATCH)
        await page.click("#start")
        await page.wait_for_function(
            "() => document.querySelector('#interim').textContent",
            timeout=WAIT_MS)
        streaming = await page.text_content("#status")
        # The fixture ends by itself, and the page ends the stream.
        status = await closed_status(page)
        finals = await texts(page, "#finals .text")
        latencies = await texts(page, "#finals .latency")
        firsts = await texts(page, "#finals .first")
        rule = await page.text_content("#rule")
        vad_states = await page.evaluate("window.vadStates")
        loudest = await page.evaluate("window.loudestLevel")
    rate = 24_000 if dialect == "openai" else 16_000
    assert streaming is not None and re.fullmatch(
        rf"streaming: \d+ Hz -> {rate} Hz \(fixture quick_brown_fox\)",
        streaming)
    assert finals == [u.text for u in fixture.utterances]
    assert status == "closed: 1000 normal close"
    assert "speech" in vad_states and "silence" in vad_states
    # A spoken sentence at the fixture's level is far above -60 dBFS.
    assert float(loudest) > 20
    for latency in latencies:
        match = re.fullmatch(r"(\d+) ms", latency)
        assert match, latency
        assert int(match[1]) < 2_000
    if dialect != "openai":  # OpenAI's events carry no word times
        assert all(re.fullmatch(r"first \d+ ms", f) for f in firsts)
        assert rule is not None and rule.endswith(
            "utterances had a first result within 300 ms")


async def test_the_page_in_mid_stream_is_pictured_for_the_readme(
    start_server: Start,
) -> None:
    # A 44 s call of ten utterances: three finals in, an interim showing.
    fixture = MANIFEST.get("support_call")
    async with start_server() as running, chromium_page() as page:
        await page.goto(f"{running.http}/?key={KEY}&source=support_call")
        await page.wait_for_selector("#start:enabled")
        await page.click("#start")
        await page.wait_for_function(
            "() => document.querySelectorAll('#finals .final').length >= 3"
            " && document.querySelector('#interim').textContent",
            timeout=WAIT_MS)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)
        await page.click("#stop")
        status = await closed_status(page)
        finals = await texts(page, "#finals .text")
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG")
    # Stopped early, the stream still ends normally with what was said:
    # the reference's words, in order, as far as the call got (where
    # two utterances are close the endpointer may join them in one).
    assert status == "closed: 1000 normal close"
    heard = " ".join(finals).split()
    said = " ".join(u.text for u in fixture.utterances).split()
    assert len(heard) > 10 and heard == said[:len(heard)]


# A refused upgrade reaches the page as 1006; the page finds out why.
REFUSED = ("closed: 1006 connection lost or refused before it opened;"
           " the server refused it: 401 invalid API key")


async def status_with_a_wrong_key(start_server: Start, dialect: str
                                  ) -> str:
    async with start_server() as running, chromium_page() as page:
        await page.goto(f"{running.http}/?key=not-{KEY}&dialect={dialect}"
                        "&source=quick_brown_fox")
        await page.wait_for_selector("#start:enabled")
        await page.click("#start")
        return await closed_status(page)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_refused_key_shows_the_reason_in_words(
    start_server: Start, dialect: str,
) -> None:
    assert await status_with_a_wrong_key(start_server, dialect) == REFUSED


async def test_close_codes_read_as_words(start_server: Start) -> None:
    async with start_server() as running, chromium_page() as page:
        await page.goto(running.http)
        words = await page.evaluate("""async () => {
          const { closeInWords } = await import('./close-codes.js');
          return [closeInWords(1000, ''), closeInWords(1008, 'pacing'),
                  closeInWords(1011, ''), closeInWords(4001, 'x'),
                  closeInWords(3999, '')];
        }""")
    assert words == ["1000 normal close",
                     "1008 policy violation (refused by the server's"
                     " rules): pacing",
                     "1011 server error",
                     "4001 closed by the service: x",
                     "3999 unknown code"]
