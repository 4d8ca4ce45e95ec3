"""A client that leaves mid-stream, over a real socket, leaves no work.

The engine answers the stream's first final, then holds its next
decode. The client reads the first delta and hangs up. The stream's
transcription task and its session's decode loop end (awaited, not
guessed at), `api_active_transcriptions` and the admission's count are
back to 0, the disconnect is counted, and once the held decode is let
go the engine is never again asked to decode anything of that stream,
although a later request runs through the same batcher after it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ch04_streaming.auth import ApiKeys
from ch04_streaming.engine import DecodeRequest, UtteranceDecoder
from ch04_streaming.session import StreamSession
from ch04_streaming.transcript import Hypothesis, Word
from ch07_api.app import Parts, create_app
from ch07_api.service import SpeechApi
from ch07_api.sse import produce
from tests.ch07.aip_harness import AUTH, KEY, fast_settings, fixture_bytes
from tests.ch07.fakes import live_server

BOUND_S = 20.0
ENDS_WITHIN_S = 5.0
CALL = {"file": ("call.wav", fixture_bytes("support_call"), "audio/wav")}


@dataclass
class HoldsAfterFirstFinal:
    """A `Recognizer` that answers until it has answered one final,
    then holds every decode until `release`; it names each utterance
    by the request it belongs to (`stream`), and records, per decode
    call, whose utterances were in the batch."""

    stream: int = 1
    ready: bool = True
    release: asyncio.Event = field(default_factory=asyncio.Event)
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    finals: int = 0
    calls: list[set[int]] = field(default_factory=list)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return UtteranceDecoder(start_s, key=self.stream)

    async def decode(self, batch: Sequence[DecodeRequest]
                     ) -> list[Hypothesis]:
        self.calls.append({request.decoder.key for request in batch})
        if self.finals and not self.release.is_set():
            self.holding.set()
            await self.release.wait()
        answers = []
        for request in batch:
            request.decoder.fed_samples += request.audio.size
            words: tuple[Word, ...] = ()
            if request.final:
                self.finals += 1
                start = request.decoder.start_s
                words = (Word(f"word{self.finals}", start, start + 0.2),)
            answers.append(Hypothesis(words, request.final))
        return answers


def tasks_running(function: Callable[..., Any]) -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks()
            if getattr(task.get_coro(), "__qualname__", "")
            == function.__qualname__]


def sample(api: SpeechApi, name: str) -> float | None:
    return api.metrics.registry.get_sample_value(name)


@asynccontextmanager
async def held_service(tmp_path: Path) -> AsyncIterator[
        tuple[HoldsAfterFirstFinal, SpeechApi, httpx.AsyncClient]]:
    """The service on a socket, its engine holding after one final."""
    engine = HoldsAfterFirstFinal()
    app = create_app(fast_settings(tmp_path),
                     Parts(keys=ApiKeys.of(KEY),
                           models={"full": engine, "cheaper": engine}))
    async with live_server(app) as port, httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=AUTH,
            timeout=BOUND_S) as client, asyncio.timeout(BOUND_S):
        yield engine, app.state.api, client


async def test_a_client_gone_mid_stream_leaves_no_work_behind(
        tmp_path: Path) -> None:
    async with held_service(tmp_path) as (engine, api, client):
        async with client.stream(
                "POST", "/v1/audio/transcriptions", files=CALL,
                data={"model": "mock-asr", "stream": "true"}) as answer:
            assert answer.status_code == 200
            lines = answer.aiter_lines()
            line = await anext(lines)
            while not line.startswith("data: "):
                line = await anext(lines)
            first = json.loads(line.removeprefix("data: "))
            assert first == {"type": "transcript.text.delta",
                             "delta": "word1", "segment_id": "seg_0"}
            await engine.holding.wait()  # the next decode is in flight
            [work] = tasks_running(produce)
            [session] = tasks_running(StreamSession.run)
            assert sample(api, "api_active_transcriptions") == 1
            assert api.admission.active == 1
        # The client has hung up in the middle of the stream.
        await asyncio.wait({work, session}, timeout=ENDS_WITHIN_S)
        assert work.cancelled(), "the transcription outlived its client"
        assert session.done(), "the session outlived its client"
        assert sample(api, "api_active_transcriptions") == 0
        assert (api.admission.active, api.admission.waiting) == (0, 0)
        assert sample(api, "api_streams_client_gone_total") == 1
        assert not tasks_running(produce)
        assert not tasks_running(StreamSession.run)
        calls = len(engine.calls)
        engine.stream = 2
        engine.release.set()  # the decode in flight may now end
        # A whole request after it, through the same batcher.
        later = await client.post("/v1/audio/transcriptions",
                                  data={"model": "mock-asr"}, files=CALL)
        assert later.status_code == 200, later.text
        assert later.json()["text"].startswith("word")
        after = engine.calls[calls:]
        assert after, "the later request was decoded"
        assert all(streams == {2} for streams in after), after
        assert sample(api, "api_active_transcriptions") == 0


async def test_a_client_gone_before_a_sync_answer_leaves_no_work_behind(
        tmp_path: Path) -> None:
    async with held_service(tmp_path) as (engine, api, client):
        waiting = asyncio.create_task(client.post(
            "/v1/audio/transcriptions", files=CALL,
            data={"model": "mock-asr"}))
        await engine.holding.wait()
        [session] = tasks_running(StreamSession.run)
        waiting.cancel()  # the client hangs up before its answer
        await asyncio.gather(waiting, return_exceptions=True)
        await asyncio.wait({session}, timeout=ENDS_WITHIN_S)
        assert session.done(), "the session outlived its client"
        while api.admission.active:  # the handler's own unwinding
            await asyncio.sleep(0.01)
        assert sample(api, "api_active_transcriptions") == 0
        assert sample(api, "api_streams_client_gone_total") == 1
        engine.release.set()
