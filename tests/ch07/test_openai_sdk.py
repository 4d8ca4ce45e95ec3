"""OpenAI's own Python SDK, pointed at the service, works unchanged.

`AsyncOpenAI(base_url=...)` sends its multipart form to the
OpenAI-compatible route and parses what comes back: each response
format, the transcription stream, and the model list. The other two
streaming styles are read as a client of each would read them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.ch07.aip_harness import (
    fast_settings,
    fixture_bytes,
    fixture_text,
    serving,
    serving_both,
)

FOX, CALL = "quick_brown_fox", "support_call"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    async with serving_both(fast_settings(tmp_path)) as (_, sdk):
        yield sdk


def upload(fixture_id: str) -> tuple[str, bytes, str]:
    return (f"{fixture_id}.wav", fixture_bytes(fixture_id), "audio/wav")


async def test_json_text_and_verbose_json(
        client: openai.AsyncOpenAI) -> None:
    plain = await client.audio.transcriptions.create(
        model="mock-asr", file=upload(FOX))
    assert plain.text == fixture_text(FOX)
    text = await client.audio.transcriptions.create(
        model="whisper-1", file=upload(FOX), response_format="text")
    assert text.strip() == fixture_text(FOX)
    verbose = await client.audio.transcriptions.create(
        model="mock-asr", file=upload(CALL),
        response_format="verbose_json")
    assert verbose.text == fixture_text(CALL)
    assert verbose.duration == pytest.approx(44.136, abs=0.01)
    assert verbose.segments is not None and len(verbose.segments) == 9
    assert verbose.words is not None
    assert [w.word for w in verbose.words] == fixture_text(CALL).split()
    assert all(w.start < w.end for w in verbose.words)
    starts = [s.start for s in verbose.segments]
    assert starts == sorted(starts)


async def test_the_transcription_stream(client: openai.AsyncOpenAI) -> None:
    stream = await client.audio.transcriptions.create(
        model="mock-asr", file=upload(CALL), stream=True)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds == ["transcript.text.delta"] * 9 + ["transcript.text.done"]
    deltas = "".join(getattr(e, "delta", "") for e in events[:-1])
    assert deltas == getattr(events[-1], "text", None)
    assert deltas == fixture_text(CALL)


async def test_the_models_list(client: openai.AsyncOpenAI) -> None:
    models = [m.id async for m in client.models.list()]
    assert "mock-asr-2026-01" in models
    model = await client.models.retrieve("mock-asr")
    assert model.id == "mock-asr-2026-01"


def frames(text: str) -> list[dict[str, str]]:
    """SSE frames as field -> value (comments dropped)."""
    parsed = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if not line.startswith(":"))
        if fields:
            parsed.append(fields)
    return parsed


async def stream_of(tmp_path: Path, stream_format: str) -> httpx.Response:
    async with serving(fast_settings(tmp_path)) as http:
        return await http.post("/v1/audio/transcriptions", data={
            "model": "mock-asr", "stream": "True",
            "stream_format": stream_format},
            files={"file": upload(CALL)})


async def test_responses_style_events_are_typed_and_numbered(
        tmp_path: Path) -> None:
    answer = await stream_of(tmp_path, "responses")
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = frames(answer.text)
    data = [json.loads(e["data"]) for e in events]
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    assert all(e["event"] == d["type"] for e, d in zip(events, data,
                                                        strict=True))
    assert data[0]["type"] == "response.created"
    assert data[0]["response"]["status"] == "in_progress"
    assert data[-1]["type"] == "response.completed"
    deltas = data[1:-1]
    assert {d["type"] for d in deltas} == {"response.output_text.delta"}
    assert "".join(d["delta"] for d in deltas) == fixture_text(CALL)
    assert data[-1]["response"]["output_text"] == fixture_text(CALL)


async def test_chat_style_chunks_end_with_done(tmp_path: Path) -> None:
    answer = await stream_of(tmp_path, "chat")
    events = frames(answer.text)
    assert events[-1] == {"data": "[DONE]"}
    chunks = [json.loads(e["data"]) for e in events[:-1]]
    assert all("type" not in c for c in chunks)
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content", "")
                   for c in chunks)
    assert text == fixture_text(CALL)


async def test_first_event_is_preceded_by_the_engines_time(
        tmp_path: Path) -> None:
    answer = await stream_of(tmp_path, "transcript")
    first, _ = answer.text.split("\n\n", 1)
    assert first.startswith(": engine-ms=")
    assert float(first.split("=", 1)[1]) > 0
    assert answer.text.count("engine-ms") == 1


async def test_the_gaps_between_streamed_segments_are_measured(
        tmp_path: Path) -> None:
    """Nine segments: one first event, eight gaps between segments (the
    API's inter-token latency), in `/metrics`."""
    async with serving_both(fast_settings(tmp_path)) as (http, sdk):
        stream = await sdk.audio.transcriptions.create(
            model="mock-asr", file=upload(CALL), stream=True)
        events = [event async for event in stream]
        exported = (await http.get("/metrics")).text
    assert len(events) == 10
    assert 'api_first_event_seconds_count{style="transcript"} 1.0' in (
        exported)
    assert 'api_inter_event_seconds_count{style="transcript"} 8.0' in (
        exported)
