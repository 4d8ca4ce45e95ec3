"""Chapter 6's pipeline tells the browser page every dialect it serves.

Its WebSocket server is chapter 4's, with chapter 5's two framings
mounted beside the three providers' dialects: `/v1/dialects` lists all
five, in the order the server maps them.
"""

from __future__ import annotations

from ch04_streaming.mock_matcher import Lexicon
from tests.ch04.harness import fetch
from tests.ch06.harness import running_pipeline


async def test_the_pipeline_lists_chapter_4s_and_chapter_5s_dialects(
    lexicon: Lexicon,
) -> None:
    async with running_pipeline(lexicon) as pipeline:
        reply = await fetch(pipeline.speech, "/v1/dialects")
    assert reply.status == 200
    # By hand: chapter 4's README's three, then chapter 5's two paths.
    assert [(d["name"], d["label"], d["path"])
            for d in reply.json()["dialects"]] == [
        ("deepgram", "Deepgram", "/v1/listen"),
        ("assemblyai", "AssemblyAI", "/v3/ws"),
        ("openai", "OpenAI Realtime", "/v1/realtime"),
        ("ws-binary", "Binary WebSocket", "/ws/binary"),
        ("ws-base64", "Base64 JSON WebSocket", "/ws/base64")]
