"""The official provider SDKs, pointed at this server, just work.

These are the providers' own client libraries, unmodified: if they parse
our messages and get the reference transcript, the dialects are real.
"""

from __future__ import annotations

import asyncio
from typing import Any

from assemblyai.streaming.v3 import (
    AsyncStreamingClient,
    StreamingClientOptions,
    StreamingEvents,
    StreamingParameters,
    TerminationEvent,
    TurnEvent,
)
from deepgram import AsyncDeepgramClient

from ch04_streaming.client import chunk_bounds, load_audio
from tests.ch04.deepgram_sdk import environment, exchange
from tests.ch04.harness import KEY, MANIFEST, Start, audio_of, reference


def chunks(fixture_id: str, chunk_ms: int = 100) -> list[bytes]:
    """A fixture in chunks; a tail under 50 ms joins the last chunk, as
    AssemblyAI asks of its clients."""
    payload = load_audio(audio_of(fixture_id)).payload
    bounds = chunk_bounds(len(payload), 32 * chunk_ms, 32 * 50)
    return [payload[start:end] for start, end in bounds]


async def test_deepgram_sdk_streams_a_fixture(start_server: Start) -> None:
    async with start_server() as running:
        client = AsyncDeepgramClient(
            api_key=KEY, environment=environment(running.http, running.url))
        async with client.listen.v1.connect(
            model="nova-3", encoding="linear16", sample_rate="16000",
            interim_results="true",
        ) as connection:
            heard = await exchange(connection, chunks("quick_brown_fox"))
    finals = [r.channel.alternatives[0] for r in heard.results
              if r.is_final]
    assert heard.transcript == reference("quick_brown_fox")
    words = [w for f in finals for w in f.words]
    truth = MANIFEST.get("quick_brown_fox").words
    assert [w.word for w in words] == [t.word for t in truth]
    assert all(abs(w.start - t.start) <= 0.05
               for w, t in zip(words, truth, strict=True))
    assert any(not r.is_final for r in heard.results)
    (summary,) = heard.metadata
    duration = MANIFEST.get("quick_brown_fox").duration_s
    assert abs(summary.duration - duration) < 0.001


async def test_deepgram_sdk_streams_a_container_with_no_encoding(
    start_server: Start,
) -> None:
    """Deepgram's rule for containers: omit encoding and sample_rate."""
    ogg = audio_of("quick_brown_fox_opus").read_bytes()
    async with start_server() as running:
        client = AsyncDeepgramClient(
            api_key=KEY, environment=environment(running.http, running.url))
        async with client.listen.v1.connect(model="nova-3") as connection:
            heard = await exchange(connection, (  # ~100 ms of Opus each
                ogg[i : i + 500] for i in range(0, len(ogg), 500)))
    assert heard.transcript == reference("quick_brown_fox")
    (summary,) = heard.metadata
    duration = MANIFEST.get("quick_brown_fox_opus").duration_s
    assert abs(summary.duration - duration) < 0.002


async def test_assemblyai_sdk_streams_a_fixture_unpaced(
    start_server: Start,
) -> None:
    """The SDK sends the 5 s file as fast as the socket takes it, as a
    file client does; AssemblyAI allows ~300 s ahead of real time, and so
    do the server's defaults."""
    turns: list[TurnEvent] = []
    terminations: list[TerminationEvent] = []

    def on_turn(_client: Any, event: TurnEvent) -> None:
        turns.append(event)

    def on_termination(_client: Any, event: TerminationEvent) -> None:
        terminations.append(event)

    async with start_server() as running:
        client = AsyncStreamingClient(StreamingClientOptions(
            api_key=KEY, api_host=running.url))
        client.on(StreamingEvents.Turn, on_turn)
        client.on(StreamingEvents.Termination, on_termination)
        async with asyncio.timeout(30):
            await client.connect(StreamingParameters.model_validate(
                {"sample_rate": 16_000, "format_turns": True}))
            await client.stream(chunks("call_back"))
            await client.disconnect(terminate=True)
    ends = [t for t in turns if t.end_of_turn and not t.turn_is_formatted]
    assert " ".join(t.transcript for t in ends) == reference("call_back")
    formatted = [t for t in turns if t.turn_is_formatted]
    assert formatted[0].transcript.startswith("Call me back")
    (termination,) = terminations
    assert termination.audio_duration_seconds == round(
        MANIFEST.get("call_back").duration_s)
