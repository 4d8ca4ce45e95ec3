"""Chapter 4's page on chapter 6's pipeline: the same page, five dialects.

Chapter 6's WebSocket server is chapter 4's, with chapter 5's framings
mounted beside the providers' dialects and the decodes going through
the cross-stream batcher. In a real Chromium the page it serves offers
all five dialects, and a fixture played in one the pipeline adds comes
back as its reference transcript.
"""

from __future__ import annotations

from ch04_streaming.mock_matcher import Lexicon
from tests.ch04.harness import KEY, MANIFEST
from tests.ch04.test_browser import chromium_page, texts
from tests.ch04.test_browser_page import closed_status
from tests.ch06.harness import running_pipeline


async def test_the_pipelines_page_plays_a_fixture_in_a_mounted_dialect(
    lexicon: Lexicon,
) -> None:
    fixture = MANIFEST.get("quick_brown_fox")
    async with running_pipeline(lexicon) as pipeline, chromium_page(
            ) as page:
        url = f"http://127.0.0.1:{pipeline.speech.port}"
        await page.goto(f"{url}/?key={KEY}&dialect=ws-base64"
                        f"&source={fixture.id}")
        await page.wait_for_selector("#start:enabled")
        offered = await page.eval_on_selector_all(
            "#dialect option:enabled", "os => os.map(o => o.value)")
        await page.click("#start")
        status = await closed_status(page)
        finals = await texts(page, "#finals .text")
    assert offered == ["deepgram", "assemblyai", "openai", "ws-binary",
                       "ws-base64"]
    assert finals == [u.text for u in fixture.utterances]
    assert status == "closed: 1000 normal close"
