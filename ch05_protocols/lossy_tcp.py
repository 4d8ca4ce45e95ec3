"""The lossy-link lab's two TCP transports: WebSocket and gRPC.

Chapter 5, "WebTransport: QUIC datagrams, head-of-line blocking". Each
starts its service as `compare.py` does (its own process, the mock at
model time zero, so the transport is what differs) and streams 24 kHz
linear16 to it: binary WebSocket frames at `/ws/binary`, whose results
say up to where they cover (`end`) and whose last message says how much
audio arrived (`closed`, `audio_s`); and a `StreamingRecognize` call,
whose results carry `result_end_time` and whose last response bills the
audio received by the started second (`total_billed_time`). Only
results with words count, on both, as gRPC sends no others.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import grpc
from websockets.asyncio.client import ClientConnection, connect

from ch05_protocols.compare import KEY, service_args
from ch05_protocols.lossy_stream import (
    CONNECT_TIMEOUT_S,
    Covered,
    Event,
    Received,
)
from ch05_protocols.service_process import running
from ch05_protocols.speech.v1.speech_pb2 import (
    RecognitionConfig,
    StreamingConfig,
    StreamingRecognizeRequest,
    StreamingRecognizeResponse,
)
from ch05_protocols.speech.v1.speech_pb2_grpc import SpeechStub

Call = grpc.aio.StreamStreamCall[StreamingRecognizeRequest,
                                StreamingRecognizeResponse]
# The rate WebTransport and WebRTC serve (the realtime API's): every
# transport resamples to the model's 16 kHz, and so waits the same.
RATE = 24_000
QUERY = f"?encoding=linear16&sample_rate={RATE}&interim_results=true"


@asynccontextmanager
async def service(transport: str) -> AsyncIterator[int]:
    args, env = service_args(transport)
    async with running(args, env) as served:
        yield served.port


@dataclass
class SocketStream:
    socket: ClientConnection

    async def send(self, chunk: bytes) -> None:
        await self.socket.send(chunk)

    async def finish(self) -> None:
        await self.socket.send(json.dumps({"type": "close"}))

    async def events(self) -> AsyncIterator[Event]:
        async for raw in self.socket:
            message = json.loads(raw)
            if message["type"] == "closed":
                yield Received(float(message["audio_s"]))
                return
            if message["type"] == "transcript" and message["words"]:
                yield Covered(float(message["end"]))

    async def close(self) -> None:
        await self.socket.close()


class WebSocketTransport:
    name, rate = "websocket", RATE

    def serve(self) -> AbstractAsyncContextManager[int]:
        return service("ws_binary")

    async def connect(self, port: int) -> SocketStream:
        return SocketStream(await connect(
            f"ws://127.0.0.1:{port}/ws/binary{QUERY}",
            additional_headers={"Authorization": f"Token {KEY}"},
            compression=None, open_timeout=CONNECT_TIMEOUT_S,
            ping_interval=None))


@dataclass
class GrpcStream:
    channel: grpc.aio.Channel
    call: Call

    async def send(self, chunk: bytes) -> None:
        await self.call.write(StreamingRecognizeRequest(audio_content=chunk))

    async def finish(self) -> None:
        await self.call.done_writing()

    async def events(self) -> AsyncIterator[Event]:
        while isinstance(response := await self.call.read(),
                         StreamingRecognizeResponse):
            for result in response.results:
                end = result.result_end_time.ToTimedelta()
                yield Covered(end.total_seconds())
            if response.HasField("total_billed_time"):
                billed = response.total_billed_time.ToTimedelta()
                yield Received(billed.total_seconds())

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


class GrpcTransport:
    name, rate = "grpc", RATE

    def serve(self) -> AbstractAsyncContextManager[int]:
        return service("grpc")

    async def connect(self, port: int) -> GrpcStream:
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.use_local_subchannel_pool", 1)])
        await channel.channel_ready()
        call = SpeechStub(channel).StreamingRecognize(
            metadata=(("authorization", f"Bearer {KEY}"),))
        await call.write(StreamingRecognizeRequest(
            streaming_config=StreamingConfig(
                config=RecognitionConfig(
                    encoding=RecognitionConfig.LINEAR16,
                    sample_rate_hertz=RATE, language_code="en-US"),
                interim_results=True)))
        return GrpcStream(channel, call)
