"""The seams later chapters build on: the composition root, the decode
scheduler, typed wire messages, backpressure and provider headers."""

from __future__ import annotations

import ast
import asyncio
import os
import signal
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.app import build_server
from ch04_streaming.auth import ApiKeys
from ch04_streaming.client import DIALECTS, load_audio, stream
from ch04_streaming.dialects import assemblyai, deepgram
from ch04_streaming.engine import (
    DecodeRequest,
    LocalMatching,
    MockRecognizer,
)
from ch04_streaming.matcher_process import MatcherProcess, WorkerState
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.scheduler import DirectScheduler
from ch04_streaming.server import ErrorBody, Status
from ch04_streaming.settings import parse_settings
from ch04_streaming.transcript import Hypothesis
from ch04_streaming.wire import WireMessage
from tests.audio_checks import load_mono
from tests.ch04.harness import KEY, MANIFEST, Start, audio_of, reference

REPO = Path(__file__).resolve().parents[2]
MESSAGE_MODULES = (deepgram, assemblyai)


def test_no_package_composes_chapter_4_through_its_main() -> None:
    """Other chapters, the bench and the examples compose chapter 4
    through `app`, never through `__main__`."""
    offenders = []
    for path in REPO.glob("*/**/*.py"):
        if ".venv" in path.parts or path.parent.name == "ch04_streaming":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.ImportFrom)
                    and node.module == "ch04_streaming.__main__"):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def wire_types() -> list[type[WireMessage]]:
    found: list[type[WireMessage]] = [ErrorBody, Status]
    for module in MESSAGE_MODULES:
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, WireMessage)
                    and value is not WireMessage):
                found.append(value)
    return found


def test_every_outgoing_message_has_a_literal_type() -> None:
    types = wire_types()
    assert len(types) >= 9  # 4 Deepgram, 3 AssemblyAI, 2 HTTP bodies
    for model in types:
        field = model.model_fields["type"]
        (literal,) = get_args(field.annotation)
        assert field.default == literal == model.__name__.removesuffix(
            "Body") or (model is ErrorBody and literal == "Error")


def test_messages_are_serialised_without_absent_fields() -> None:
    results = deepgram.Results(
        start=0.0, duration=1.0, is_final=True, speech_final=True,
        channel=deepgram.Channel(alternatives=[]),
        metadata=deepgram.ResultsMetadata(request_id="r"))
    assert '"from_finalize"' not in results.to_json()
    assert '"from_finalize":true' in results.model_copy(
        update={"from_finalize": True}).to_json()


class RecordingScheduler(DirectScheduler):
    """The direct scheduler, counting what passes through it."""

    requests: list[DecodeRequest]

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        self.requests.append(request)
        return await super().decode(request)


async def test_every_decode_goes_through_the_scheduler(
    lexicon: Lexicon,
) -> None:
    """The composition root hands the server a scheduler; the sessions
    it builds decode through it, and only through it."""
    engine = MockRecognizer(LocalMatching(lexicon),
                            Accelerator(PROFILES["zero"]))
    scheduler = RecordingScheduler(engine)
    scheduler.requests = []
    settings = parse_settings(["--load-s", "0", "--warmup-s", "0"], env={})
    built = build_server(settings, ApiKeys.of(KEY), scheduler=scheduler)
    await built.server.start("127.0.0.1", 0)
    await built.recognizer.start()
    try:
        report = await stream(f"ws://127.0.0.1:{built.server.port}",
                              DIALECTS["deepgram"], KEY,
                              load_audio(audio_of("call_back")))
    finally:
        await built.server.shutdown()
        await built.recognizer.stop()
    assert report.transcript == reference("call_back")
    assert any(r.final for r in scheduler.requests)
    assert len(scheduler.requests) >= len(report.results)


def decode_in_chunks(engine: MockRecognizer, fixture_id: str
                     ) -> list[Hypothesis]:
    """One utterance of a fixture, 100 ms a call, then its final."""
    samples = load_mono(MANIFEST.get(fixture_id), REPO).astype(np.float32)

    async def run() -> list[Hypothesis]:
        decoder = engine.new_utterance(0.0)
        got = []
        for start in range(0, samples.size, 1600):
            got += await engine.decode([DecodeRequest(
                decoder, samples[start : start + 1600], final=False)])
        empty = np.zeros(0, dtype=np.float32)
        return got + await engine.decode([DecodeRequest(
            decoder, empty, final=True)])

    return asyncio.run(run())


def test_the_matcher_process_hears_what_the_local_matcher_hears(
    lexicon: Lexicon,
) -> None:
    """The service's matcher runs in a worker process: every interim
    and the final are those of the matcher run in this process."""
    device = Accelerator(PROFILES["zero"])
    local = MockRecognizer(LocalMatching(lexicon), device)
    worker = MatcherProcess(REPO / "examples" / "audio" / "manifest.json")
    remote = MockRecognizer(worker, device)
    try:
        expected = decode_in_chunks(local, "weather_forecast")
        got = decode_in_chunks(remote, "weather_forecast")
    finally:
        asyncio.run(worker.stop())
    assert got == expected
    assert " ".join(w.text for w in got[-1].words) == reference(
        "weather_forecast")


def test_the_worker_forgets_finished_and_idle_utterances(
    lexicon: Lexicon,
) -> None:
    state = WorkerState(lexicon, idle_s=60.0)
    audio = np.zeros(1600, dtype=np.float32)
    state.advance([(1, audio, False), (2, audio, False)], now=0.0)
    state.advance([(1, audio, True)], now=30.0)  # the final: forgotten
    assert list(state.matchers) == [2]
    state.advance([(3, audio, False)], now=59.9)
    assert list(state.matchers) == [2, 3]
    state.advance([(3, audio, False)], now=60.0)  # 2: idle for 60 s
    assert list(state.matchers) == [3]


async def test_one_frame_over_the_pending_audio_cap_is_refused(
    start_server: Start,
) -> None:
    """256 KiB of 8 kHz mu-law is 32.8 s of audio in one frame: more
    than may wait for decoding (10 s), refused when it arrives."""
    async with start_server() as running:
        socket = await connect(
            running.url + "/v1/listen?encoding=mulaw&sample_rate=8000",
            additional_headers={"Authorization": f"Token {KEY}"})
        await socket.send(bytes(256 * 1024 - 64))
        async with asyncio.timeout(5):
            await socket.wait_closed()
    assert socket.close_code == 1008
    assert socket.close_reason == (
        "DATA-0000: a frame of 32.76 s of audio; at most 10 s may wait"
        " for decoding")


@pytest.mark.parametrize(("path", "headers", "has_dg_error"), [
    ("/v1/listen", {}, True),
    ("/v3/ws", {}, False),
    ("/v3/ws?sample_rate=11025", {"Authorization": KEY}, False),
])
async def test_provider_error_headers_only_on_their_dialect(
    start_server: Start, path: str, headers: dict[str, str],
    has_dg_error: bool,
) -> None:
    async with start_server() as running:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(running.url + path,
                               additional_headers=headers):
                pass
    response = caught.value.response
    assert response.status_code in (400, 401)
    assert ("dg-error" in response.headers) is has_dg_error


async def test_deeply_nested_control_message_is_bad_input(
    start_server: Start,
) -> None:
    """100 KB of nested JSON is a bad control message, not a server
    error: the dialect's code, and other streams unaffected."""
    async with start_server() as running:
        socket = await connect(
            running.url + "/v1/listen",
            additional_headers={"Authorization": f"Token {KEY}"})
        await socket.send("[" * 50_000 + "]" * 50_000)
        async with asyncio.timeout(5):
            await socket.wait_closed()
        errors = running.server.metrics.stream_errors.labels(
            "deepgram", "1011")._value.get()
    assert socket.close_code == 1008
    assert (socket.close_reason or "").startswith("DATA-0001")
    assert errors == 0


async def test_a_dead_matcher_worker_fails_its_trip_and_is_replaced(
) -> None:
    worker = MatcherProcess(REPO / "examples" / "audio" / "manifest.json")
    await worker.start()
    try:
        pool = worker._pool
        assert pool is not None
        (pid,) = pool._processes  # the one worker
        os.kill(pid, signal.SIGKILL)
        decoder = worker.new_utterance(0.0)
        request = DecodeRequest(decoder, np.zeros(1600, np.float32), False)
        with pytest.raises(BrokenProcessPool):
            async with asyncio.timeout(30):
                await worker.match([request])
        async with asyncio.timeout(30):
            assert await worker.match([request]) == [[]]
        assert worker._pool is not None and worker._pool is not pool
    finally:
        await worker.stop()
