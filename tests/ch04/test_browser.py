"""The browser client end to end: a real Chromium with a fake microphone.

Chapter 4, "End-to-end architecture". Headless Chromium plays a fixture
WAV as its microphone, at real time; the page at `/` captures it,
downsamples it in its AudioWorklet to 16 kHz linear16 and streams it to
the server in this process, which must answer with the fixture's
reference text, so every step of capture -> codec -> transport has to
keep the sound intact.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import Page, async_playwright

from tests.ch04.harness import KEY, MANIFEST, Start, audio_of
from tests.environment import require_commands

# Chromium flags: no network of its own, and a microphone that plays a
# file once (`%noloop`) without asking for permission.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream"]
WAIT_MS = 30_000  # a fixture is 5-7 s of audio, streamed at real time


@asynccontextmanager
async def chromium_page(microphone: Path | None = None,
                        ) -> AsyncIterator[Page]:
    """A page in a fresh Chromium whose microphone plays a WAV file."""
    require_commands("chromium")
    flags = list(FLAGS)
    if microphone is not None:
        wav = microphone.resolve()
        flags.append(f"--use-file-for-fake-audio-capture={wav}%noloop")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=flags)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
            assert errors == []
        finally:
            await browser.close()


async def texts(page: Page, selector: str) -> list[str]:
    return await page.locator(selector).all_text_contents()


# AudioContext rates: the common 48 kHz, an integer ratio, and 44.1 kHz,
# a fractional one (2.75625 input samples per output sample).
@pytest.mark.parametrize(("fixture_id", "rate"), [
    ("quick_brown_fox", 48_000),
    ("weather_forecast", 44_100),
])
async def test_browser_microphone_comes_back_as_the_reference_text(
    start_server: Start, fixture_id: str, rate: int,
) -> None:
    fixture = MANIFEST.get(fixture_id)
    async with start_server() as running, chromium_page(
        audio_of(fixture_id)
    ) as page:
        await page.goto(f"{running.http}/?key={KEY}&rate={rate}")
        await page.click("#start")
        await page.wait_for_function(
            "n => document.querySelectorAll('#finals .final').length >= n",
            arg=len(fixture.utterances), timeout=WAIT_MS)
        streaming = await page.text_content("#status")
        await page.click("#stop")
        await page.wait_for_function(
            "() => document.querySelector('#status').textContent"
            ".startsWith('closed')", timeout=WAIT_MS)
        finals = await texts(page, "#finals .text")
        latencies = await texts(page, "#finals .latency")
        interims = await page.evaluate("window.interimCount")
        status = await page.text_content("#status")
    assert finals == [u.text for u in fixture.utterances]
    assert interims > 0
    assert streaming == f"streaming: {rate} Hz -> 16000 Hz"
    assert status == "closed: 1000 normal close"
    for latency in latencies:
        match = re.fullmatch(r"(\d+) ms", latency)
        assert match, latency
        # The endpointer waits for 300 ms of silence after the last
        # word, which the VAD may hear begin a frame early.
        assert 200 <= int(match[1]) < 1_000


async def test_media_recorder_mode_streams_webm_opus(
    start_server: Start,
) -> None:
    """The page's other capture: the browser's own MediaRecorder sends
    WebM/Opus blobs, and the server decodes them as they come."""
    fixture = MANIFEST.get("quick_brown_fox")
    async with start_server() as running, chromium_page(
        audio_of("quick_brown_fox")
    ) as page:
        await page.goto(f"{running.http}/?key={KEY}")
        default = await page.input_value("#capture")
        await page.select_option("#capture", "mediarecorder")
        await page.click("#start")
        await page.wait_for_function(
            "n => document.querySelectorAll('#finals .final').length >= n",
            arg=len(fixture.utterances), timeout=WAIT_MS)
        streaming = await page.text_content("#status")
        await page.click("#stop")
        await page.wait_for_function(
            "() => document.querySelector('#status').textContent"
            ".startsWith('closed')", timeout=WAIT_MS)
        finals = await texts(page, "#finals .text")
        latencies = await texts(page, "#finals .latency")
        status = await page.text_content("#status")
    assert default == "worklet"
    assert finals == [u.text for u in fixture.utterances]
    assert streaming == "streaming: MediaRecorder audio/webm;codecs=opus"
    assert status == "closed: 1000 normal close"
    for latency in latencies:  # dated by the recording's clock: roughly
        match = re.fullmatch(r"(\d+) ms", latency)
        assert match, latency
        assert int(match[1]) < 2_000


async def test_browser_shows_why_a_wrong_key_got_no_stream(
    start_server: Start,
) -> None:
    async with start_server() as running, chromium_page() as page:
        await page.goto(f"{running.http}/?key=not-{KEY}")
        await page.click("#start")
        await page.wait_for_function(
            "() => document.querySelector('#status').textContent"
            ".startsWith('closed')", timeout=WAIT_MS)
        status = await page.text_content("#status")
        start_enabled = await page.is_enabled("#start")
    # The server answered 401, which a browser hides from the page: all
    # it learns is 1006, a connection that failed before it opened. The
    # page then asks the same URL over HTTP, and shows the reason.
    assert status == ("closed: 1006 connection lost or refused before it"
                      " opened; the server refused it: 401 invalid API key")
    assert start_enabled


# A half-scale tone through the capture worklet, in an offline
# AudioContext at `rate`: the first ten frames it posts, as bytes.
RENDER_TONE = """async ([rate, hz]) => {
  const context = new OfflineAudioContext(1, 2 * rate, rate);
  await context.audioWorklet.addModule("capture-worklet.js");
  const tone = new OscillatorNode(context, { frequency: hz });
  const worklet = new AudioWorkletNode(context, "capture",
                                       { numberOfOutputs: 0 });
  const bytes = [];
  const tenFrames = new Promise((resolve) => {
    worklet.port.onmessage = (event) => {
      bytes.push(...new Uint8Array(event.data.pcm));
      if (bytes.length === 10 * 3200) resolve();
    };
  });
  tone.connect(new GainNode(context, { gain: 0.5 })).connect(worklet);
  tone.start();
  await Promise.all([context.startRendering(), tenFrames]);
  return bytes.slice(0, 10 * 3200);
}"""


async def tone_level_db(page: Page, rate: int, hz: int) -> float:
    """The worklet's output level for a tone, relative to its input."""
    wire = bytes(await page.evaluate(RENDER_TONE, [rate, hz]))
    samples = np.frombuffer(wire, "<i2") / 32768
    steady = samples[1_600:]  # past the filter's start, from silence
    rms = float(np.sqrt(np.mean(steady**2)))
    # A tone filtered below half a 16-bit step rounds to digital silence:
    # count that as one step, -81 dB under this half-scale tone.
    rms = max(rms, 1 / 32768)
    return 20 * math.log10(rms / (0.5 / math.sqrt(2)))


@pytest.mark.parametrize("rate", [48_000, 44_100])
async def test_worklet_keeps_speech_level_and_stops_what_would_alias(
    start_server: Start, rate: int,
) -> None:
    async with start_server() as running, chromium_page() as page:
        await page.goto(running.http)  # the worklet's origin
        async with asyncio.timeout(WAIT_MS / 1000):
            speech = await tone_level_db(page, rate, 1_000)
            # Unfiltered, 12 kHz would fold to 4 kHz, inside speech.
            alias = await tone_level_db(page, rate, 12_000)
    assert abs(speech) < 0.1  # no gain change: the engine hears levels
    assert alias < -60
