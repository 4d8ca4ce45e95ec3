"""The chapter 5 stop of the tour: the same audio over gRPC and WebRTC.

Starts `python -m ch05_protocols grpc` as its own process, waits for
its health service to say SERVING (the gRPC form of `/readyz`), streams
a fixture at the pace of speech with `examples.stream_grpc`'s client,
prints each final with the billed duration, and stops the service with
SIGTERM. Then the same for `python -m ch05_protocols rtc`: a shorter
fixture as Opus over a WebRTC call, signalled as OpenAI's Realtime API
signals it, with its completed transcript, the codec the offer and
answer settled on, and the delay the receiver's jitter buffer added.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ch04_streaming.client import load_audio
from ch05_protocols.rtc_client import stream_and_report
from examples.fixtures import load_manifest
from examples.service import running_service, wait_until_ready
from examples.stream_grpc import Pace, recognize

FIXTURE = "call_back"
RTC_FIXTURE = "living_room"  # the shortest: 4.5 s
SERVING = health_pb2.HealthCheckResponse.SERVING


async def until_serving(channel: grpc.aio.Channel,
                        timeout_s: float = 60.0) -> None:
    aio_channel: Any = channel  # the stubs type sync channels only
    health: Any = health_pb2_grpc.HealthStub(aio_channel)
    request = health_pb2.HealthCheckRequest(service="")
    async with asyncio.timeout(timeout_s):
        async for reply in health.Watch(request):
            if reply.status == SERVING:
                return


async def run() -> None:
    key = "demo-" + secrets.token_hex(8)
    fixture = load_manifest().get(FIXTURE)
    async with running_service(
            ("-m", "ch05_protocols", "grpc", "--port", "0"),
            {"SPEECH_API_KEYS": key}) as service:
        print(f"gRPC service started: pid {service.pid}, port"
              f" {service.port}")
        async with grpc.aio.insecure_channel(
                f"127.0.0.1:{service.port}") as channel:
            await until_serving(channel)
            print("  health: SERVING")
            print(f"  streaming {fixture.file().name} over"
                  " speech.v1.Speech/StreamingRecognize:", flush=True)
            async for response in recognize(
                    channel, load_audio(fixture.file()), key,
                    Pace(realtime=True)):
                for result in response.results:
                    if result.is_final:
                        text = result.alternatives[0].transcript
                        print(f"  [grpc] {text}", flush=True)
                if response.HasField("total_billed_time"):
                    billed = response.total_billed_time.ToTimedelta()
                    print(f"  billed: {billed.total_seconds():g} s")
    print("gRPC service stopped on SIGTERM")


async def webrtc() -> None:
    key = "demo-" + secrets.token_hex(8)
    fixture = load_manifest().get(RTC_FIXTURE)
    async with running_service(
            ("-m", "ch05_protocols", "rtc", "--port", "0"),
            {"SPEECH_API_KEYS": key}) as service:
        print(f"WebRTC service started: pid {service.pid}, port"
              f" {service.port}")
        await wait_until_ready(service.port)
        print(f"  streaming {fixture.file().name} as Opus over a WebRTC"
              " call (POST /v1/realtime/calls):", flush=True)
        await stream_and_report(fixture.file(),
                                f"http://127.0.0.1:{service.port}", key)
    print("WebRTC service stopped on SIGTERM")


def grpc_and_webrtc() -> None:
    asyncio.run(run())
    asyncio.run(webrtc())


if __name__ == "__main__":
    grpc_and_webrtc()
