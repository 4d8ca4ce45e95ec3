"""A failure mid-stream, as each streaming style puts it on the wire.

The engine fails on the stream's second final, after one segment went
out. OpenAI's transcription style and the Chat style then send one
`data:` object `{"error": {message, type, param, code}}` (what OpenAI's
SDKs raise on) and nothing after it: no `done` event, no `[DONE]`
sentinel, which would tell a client the transcript is whole. The
Responses style sends a typed `error` event, numbered right after the
last one. The service serves the next request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ch04_streaming.auth import ApiKeys
from ch07_api.app import Parts
from tests.ch07.aip_harness import (
    KEY,
    fast_settings,
    fixture_bytes,
    serving_both,
)
from tests.ch07.fakes import SteeredRecognizer

CALL = {"file": ("call.wav", fixture_bytes("support_call"), "audio/wav")}
# The engine's own words ("failed on cue") stay in the service's log.
FAILED = {"message": "inference failed for this request; retry it",
          "type": "server_error", "param": None,
          "code": "server_unavailable"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    engine = SteeredRecognizer(fail_final=2)
    parts = Parts(keys=ApiKeys.of(KEY),
                  models={"full": engine, "cheaper": engine})
    async with serving_both(fast_settings(tmp_path), parts) as (http, _):
        yield http


async def events_of(client: httpx.AsyncClient, stream_format: str
                    ) -> list[tuple[str | None, str]]:
    """(event name, data) of each frame; comments left out."""
    answer = await client.post(
        "/v1/audio/transcriptions", files=CALL,
        data={"model": "mock-asr", "stream": "true",
              "stream_format": stream_format})
    assert answer.status_code == 200
    assert answer.text.endswith("\n\n")
    events = []
    for block in answer.text.removesuffix("\n\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n")
                      if not line.startswith(":"))
        if fields:
            events.append((fields.get("event"), fields["data"]))
    return events


def error_of(data: str) -> dict[str, Any]:
    body = json.loads(data)
    assert list(body) == ["error"]
    assert body["error"]["message"].endswith(FAILED["message"])
    error: dict[str, Any] = body["error"]
    return error | {"message": FAILED["message"]}


async def test_transcript_style(client: httpx.AsyncClient) -> None:
    events = await events_of(client, "transcript")
    assert [json.loads(d)["type"] for _, d in events[:-1]] == [
        "transcript.text.delta"]
    assert error_of(events[-1][1]) == FAILED
    good = await client.post("/v1/audio/transcriptions", files=CALL,
                             data={"model": "mock-asr"})
    assert good.status_code == 200, good.text


async def test_chat_style(client: httpx.AsyncClient) -> None:
    events = await events_of(client, "chat")
    assert all(event is None for event, _ in events)
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""}, {"content": "word1"}]
    assert error_of(events[-1][1]) == FAILED
    assert "[DONE]" not in [d for _, d in events]


async def test_responses_style(client: httpx.AsyncClient) -> None:
    events = await events_of(client, "responses")
    data = [json.loads(d) for _, d in events]
    assert [e for e, _ in events] == [d["type"] for d in data] == [
        "response.created", "response.output_text.delta", "error"]
    assert [d["sequence_number"] for d in data] == [0, 1, 2]
    last = data[-1]
    assert last["message"].endswith(FAILED["message"])
    assert (last["code"], last["param"]) == ("server_unavailable", None)
