"""Both transports on one pipeline, and what each level does to them.

The real pipeline runs in this process: chapter 4's WebSocket server
and chapter 5's gRPC server over one scheduler. Streams of both
transports share batches and hear their fixtures; at the last level a
new stream is refused before its upgrade (503, Retry-After) or with
RESOURCE_EXHAUSTED and a retry hint; an admitted stream is told its
service level; without interims, finals still come, and a client that
vanishes mid-stream costs the others nothing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import httpx
import pytest
from websockets.asyncio.client import connect

from ch03_gpu.device import Accelerator, CostModel
from ch04_streaming.client import DeepgramClient, load_audio, stream
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.stream_handler import StreamHandler
from ch05_protocols.speech.v1.speech_pb2_grpc import SpeechStub
from ch06_pipeline.app import Pipeline
from ch06_pipeline.degradation import Level
from ch06_pipeline.service_level import LEVEL_HEADER
from examples.stream_grpc import Pace, config_request, recognize
from tests.ch04.harness import audio_of, reference
from tests.ch05.grpc_harness import finals, metadata, sent_then_held
from tests.ch06.harness import (
    KEY,
    TIMEOUT_S,
    mock_models,
    running_pipeline,
)

FOX, WEATHER = "quick_brown_fox", "weather_forecast"


def ws_url(pipeline: Pipeline) -> str:
    return f"ws://127.0.0.1:{pipeline.speech.port}"


def grpc_address(pipeline: Pipeline) -> str:
    return f"127.0.0.1:{pipeline.grpc.port}"


def at_level(pipeline: Pipeline, level: Level) -> None:
    assert pipeline.policy is not None
    pipeline.policy.level = level


def config_only(channel: grpc.aio.Channel) -> Any:
    """A call that sends its config, then nothing: the config names the
    audio, so it is read before the level is judged, and a client that
    writes no more hears the server's status, not INTERNAL."""
    config = config_request(load_audio(audio_of(FOX)))
    return SpeechStub(channel).StreamingRecognize(
        sent_then_held([config], asyncio.Event()), metadata=metadata(KEY))


async def grpc_transcript(pipeline: Pipeline, fixture: str) -> str:
    async with grpc.aio.insecure_channel(grpc_address(pipeline)) as channel:
        responses = [r async for r in recognize(
            channel, load_audio(audio_of(fixture)), KEY,
            Pace(realtime=False))]
    return finals(responses)


async def test_both_transports_share_batches_and_hear_their_audio(
        lexicon: Lexicon) -> None:
    async with running_pipeline(lexicon, "--max-wait-ms", "20"
                                ) as pipeline:
        async with asyncio.timeout(TIMEOUT_S):
            ws, by_grpc = await asyncio.gather(
                stream(ws_url(pipeline), DeepgramClient(), KEY,
                       load_audio(audio_of(FOX))),
                grpc_transcript(pipeline, WEATHER))
        batches = pipeline.scheduler.batches
        sizes = pipeline.speech.metrics.registry.get_sample_value(
            "pipeline_batch_size_sum", {"model": "full"})
    assert ws.transcript == reference(FOX)
    assert by_grpc == reference(WEATHER)
    assert sizes is not None and sizes > batches  # some held both


async def test_the_last_level_refuses_new_websocket_streams(
        lexicon: Lexicon) -> None:
    async with running_pipeline(lexicon) as pipeline:
        at_level(pipeline, Level.REJECT_NEW_STREAMS)
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"http://127.0.0.1:{pipeline.speech.port}/v1/listen",
                headers={"Authorization": f"Token {KEY}",
                         "Connection": "Upgrade", "Upgrade": "websocket",
                         "Sec-WebSocket-Version": "13",
                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        refused = pipeline.speech.metrics.registry.get_sample_value(
            "pipeline_drops_total", {"reason": "new_stream_refused"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["reason"] == ("overloaded"
                                         " (reject_new_streams): retry in"
                                         " 5 s")
    assert refused == 1


async def test_the_last_level_refuses_new_grpc_streams(
        lexicon: Lexicon) -> None:
    async with running_pipeline(lexicon) as pipeline:
        at_level(pipeline, Level.REJECT_NEW_STREAMS)
        async with grpc.aio.insecure_channel(
                grpc_address(pipeline)) as channel:
            call = config_only(channel)
            async with asyncio.timeout(TIMEOUT_S):
                code, details = await call.code(), await call.details()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == "overloaded (reject_new_streams): retry in 5 s"


@pytest.mark.parametrize("level", [Level.NORMAL, Level.CHEAPER_MODEL])
async def test_a_stream_is_told_its_service_level(
        lexicon: Lexicon, level: Level) -> None:
    async with running_pipeline(lexicon) as pipeline:
        at_level(pipeline, level)
        url = f"{ws_url(pipeline)}/v1/listen?encoding=linear16" \
              "&sample_rate=16000"
        async with connect(url, additional_headers={
                "Authorization": f"Token {KEY}"}) as socket:
            assert socket.response is not None
            header = socket.response.headers[LEVEL_HEADER]
        async with grpc.aio.insecure_channel(
                grpc_address(pipeline)) as channel:
            call = config_only(channel)
            async with asyncio.timeout(TIMEOUT_S):
                initial = dict(await call.initial_metadata())
                call.cancel()
    assert header == initial[LEVEL_HEADER] == level.label


async def test_without_interims_the_finals_still_come(
        lexicon: Lexicon) -> None:
    async with running_pipeline(lexicon) as pipeline:
        at_level(pipeline, Level.NO_INTERIMS)
        async with asyncio.timeout(TIMEOUT_S):
            report = await stream(ws_url(pipeline), DeepgramClient(), KEY,
                                  load_audio(audio_of(FOX)))
    assert report.transcript == reference(FOX)
    assert all(result.is_final for result in report.results
               if result.text)


async def test_the_cheaper_model_decodes_new_utterances(
        lexicon: Lexicon) -> None:
    async with running_pipeline(lexicon) as pipeline:
        at_level(pipeline, Level.CHEAPER_MODEL)
        async with asyncio.timeout(TIMEOUT_S):
            report = await stream(ws_url(pipeline), DeepgramClient(), KEY,
                                  load_audio(audio_of(FOX)))
        by_model = {model: pipeline.speech.metrics.registry.get_sample_value(
            "pipeline_batch_size_count", {"model": model})
            for model in ("full", "cheaper")}
    assert report.transcript  # heard, with the cheaper model's errors
    assert by_model["cheaper"] and not by_model["full"]


async def test_a_client_that_vanishes_mid_stream_costs_others_nothing(
        lexicon: Lexicon) -> None:
    async with running_pipeline(lexicon) as pipeline:
        url = f"{ws_url(pipeline)}/v1/listen?encoding=linear16" \
              "&sample_rate=16000"
        audio = load_audio(audio_of(FOX)).payload
        async with asyncio.timeout(TIMEOUT_S):
            socket = await connect(url, additional_headers={
                "Authorization": f"Token {KEY}"})
            for offset in range(0, len(audio) // 2, 3200):
                await socket.send(audio[offset:offset + 3200])
            socket.transport.abort()  # gone, requests still queued
            report = await stream(ws_url(pipeline), DeepgramClient(), KEY,
                                  load_audio(audio_of(FOX)))
            while pipeline.speech.handlers:
                await asyncio.sleep(0.01)
    assert report.transcript == reference(FOX)


async def test_a_stream_faster_than_real_time_is_throttled(
        lexicon: Lexicon) -> None:
    """With a slow device and a half-second cap on undecoded audio, a
    client sending as fast as it can is read no faster than its audio
    is decoded (the buffer policy), and nothing it said is lost."""
    device = Accelerator(CostModel(fixed_ms=100.0, per_audio_s_ms=0.0))
    async with running_pipeline(
            lexicon, models=mock_models(lexicon, device),
            max_pending_audio_s=0.5) as pipeline:
        seen: list[StreamHandler] = []

        async def watch() -> None:
            while not seen:
                seen.extend(pipeline.speech.handlers)
                await asyncio.sleep(0.005)

        async with asyncio.timeout(TIMEOUT_S):
            watcher = asyncio.create_task(watch())
            report = await stream(ws_url(pipeline), DeepgramClient(), KEY,
                                  load_audio(audio_of(FOX)))
            await watcher
    assert report.transcript == reference(FOX)
    [handler] = seen
    assert 0.3 < handler.session.cap.peak_s <= 0.5 + 0.1  # held at cap


async def test_a_stream_faster_than_real_time_drops_stale_audio_if_asked(
        lexicon: Lexicon) -> None:
    """The drop policy (chapter 5's `/ws/binary?backpressure=drop`):
    audio past the cap is dropped, oldest first, counted on /metrics."""
    device = Accelerator(CostModel(fixed_ms=100.0, per_audio_s_ms=0.0))
    async with running_pipeline(
            lexicon, models=mock_models(lexicon, device),
            max_pending_audio_s=0.5) as pipeline:
        url = (f"{ws_url(pipeline)}/ws/binary?encoding=linear16"
               "&sample_rate=16000&backpressure=drop")
        audio = load_audio(audio_of(FOX)).payload
        async with asyncio.timeout(TIMEOUT_S):
            async with connect(url, additional_headers={
                    "Authorization": f"Token {KEY}"}) as socket:
                for offset in range(0, len(audio), 3200):
                    await socket.send(audio[offset:offset + 3200])
                await socket.send(json.dumps({"type": "close"}))
                messages = [json.loads(m) async for m in socket]
            while pipeline.speech.handlers:
                await asyncio.sleep(0.01)
        counted = pipeline.speech.metrics.registry.get_sample_value(
            "speech_dropped_audio_seconds_total", {"dialect": "ws-binary"})
    closed = messages[-1]
    assert closed["type"] == "closed"
    assert closed["dropped_audio_s"] > 1.0
    assert counted == pytest.approx(closed["dropped_audio_s"], abs=0.01)
