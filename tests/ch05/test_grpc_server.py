"""Health, reflection, drain, and the deadline carried into inference.

Health says NOT_SERVING until the model is ready and again while
draining; reflection names the services without a key; a drain lets
open streams finish their utterances and ends them UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ch04_streaming.engine import DecodeRequest, UtteranceDecoder
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.transcript import Hypothesis
from ch05_protocols.deadline import DeadlineExpiredError, DeadlineScheduler
from tests.ch04.harness import reference
from tests.ch05.grpc_harness import (
    audio_requests,
    ending,
    finals,
    fixture_audio,
    responses_until_failed,
    sent_then_held,
    serving,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_health_is_not_serving_until_the_model_is_ready(
    lexicon: Lexicon,
) -> None:
    async with serving(lexicon, ready=False) as running:
        stub: Any = health_pb2_grpc.HealthStub(running.channel)
        watch = stub.Watch(health_pb2.HealthCheckRequest(
            service="speech.v1.Speech"))
        first = await anext(aiter(watch))
        await running.recognizer.start()
        second = await anext(aiter(watch))
        watch.cancel()
        overall = await stub.Check(health_pb2.HealthCheckRequest())
    assert (first.status, second.status) == (NOT_SERVING, SERVING)
    assert overall.status == SERVING


async def test_reflection_lists_the_services_without_a_key(
    lexicon: Lexicon,
) -> None:
    async with serving(lexicon) as running:
        channel: Any = running.channel  # the stubs type sync channels only
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in stub.ServerReflectionInfo(iter([request])):
            names = {s.name for s in reply.list_services_response.service}
            break
    assert {"speech.v1.Speech", "grpc.health.v1.Health"} <= names


async def test_a_drain_finishes_open_streams_then_says_unavailable(
    lexicon: Lexicon,
) -> None:
    requests = audio_requests(fixture_audio("quick_brown_fox"))
    async with serving(lexicon) as running:
        server = running.built.server
        sent = asyncio.Event()
        call = running.call(sent_then_held(requests, sent))
        await sent.wait()
        first = await anext(aiter(call))  # the stream is under way
        drain = asyncio.create_task(server.speech.gate.drain(5.0))
        rest = await responses_until_failed(call)
        code, details = await ending(call)
        await drain
        refused, why = await ending(running.call(iter(requests[:1])))
    # What had arrived when the drain began is finished and billed.
    heard = finals([first, *rest])
    assert heard and reference("quick_brown_fox").startswith(heard)
    assert rest[-1].HasField("total_billed_time")
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details.startswith("server shutting down")
    assert (refused, why) == (grpc.StatusCode.UNAVAILABLE,
                              "server is draining: retry in 1 s")


class CountingScheduler:
    def __init__(self) -> None:
        self.decodes = 0

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return UtteranceDecoder(start_s)

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        self.decodes += 1
        return Hypothesis((), request.final)


def request() -> DecodeRequest:
    return DecodeRequest(UtteranceDecoder(0.0), np.zeros(160, np.float32),
                         final=False)


async def test_no_decode_starts_once_the_deadline_has_passed() -> None:
    inner = CountingScheduler()
    scheduler = DeadlineScheduler(inner, time_remaining=lambda: 0.0)
    with pytest.raises(DeadlineExpiredError):
        await scheduler.decode(request())
    assert inner.decodes == 0


@pytest.mark.parametrize("remaining", [None, 5.0])
async def test_decodes_run_while_time_remains(
    remaining: float | None,
) -> None:
    inner = CountingScheduler()
    scheduler = DeadlineScheduler(inner, time_remaining=lambda: remaining)
    hypothesis = await scheduler.decode(request())
    assert inner.decodes == 1 and hypothesis.words == ()
