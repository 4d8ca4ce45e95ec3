"""`python -m ch05_protocols grpc` as its own process: ready, serve, drain.

Started as an operator starts it, on a free port. Health turns SERVING
once the model is warm; a fixture's reference transcript comes back;
SIGTERM lets an open stream finish and end UNAVAILABLE, and the process
exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ch05_protocols.speech.v1.speech_pb2_grpc import SpeechStub
from examples.service import running_service
from examples.stream_grpc import Pace, recognize
from tests.ch04.harness import reference
from tests.ch05.grpc_harness import (
    KEY,
    audio_requests,
    finals,
    fixture_audio,
    metadata,
    sent_then_held,
)

TIMEOUT_S = 60.0


async def wait_until_serving(channel: grpc.aio.Channel) -> None:
    """Health's Watch stream says SERVING: pushed, not polled."""
    stub: Any = health_pb2_grpc.HealthStub(channel)
    watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
    async for reply in watch:
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            break
    watch.cancel()


async def test_serves_then_drains_on_sigterm() -> None:
    audio = fixture_audio("quick_brown_fox")
    env = {"SPEECH_API_KEYS": KEY, "CH04_LOAD_S": "0",
           "CH04_WARMUP_S": "0", "CH05_AUDIO_TIMEOUT_S": "30"}
    async with running_service(
            ("-m", "ch05_protocols", "grpc", "--port", "0"),
            env) as service, grpc.aio.insecure_channel(
            f"127.0.0.1:{service.port}") as channel:
        async with asyncio.timeout(TIMEOUT_S):
            await wait_until_serving(channel)
            heard = [r async for r in recognize(
                channel, audio, KEY, Pace(realtime=False))]
            sent = asyncio.Event()
            call = SpeechStub(channel).StreamingRecognize(
                sent_then_held(audio_requests(audio), sent),
                metadata=metadata())
            await sent.wait()
            # An interim back: the server holds the stream (under load,
            # a signal sent sooner may arrive before the call does).
            responses = aiter(call)
            drained = [await anext(responses)]
            service.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(grpc.aio.AioRpcError):
                async for response in responses:
                    drained.append(response)
            code = await call.code()
            details = await call.details()
            exit_code = await service.process.wait()
    assert finals(heard) == reference("quick_brown_fox")
    assert drained[-1].HasField("total_billed_time")
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details.startswith("server shutting down")
    assert exit_code == 0
