"""One stream of audio over each of the three transports compared.

Chapter 5, "Production reality". A `Link` is one client's stream: send
100 ms chunks, say the audio is done, read the stream time each result
reaches. Binary WebSocket (`/ws/binary`), base64 WebSocket
(`/ws/base64`) and gRPC (`speech.v1`) differ only in here; the load,
the clock and the counting around them are the same. Only results that
carry words count, on every transport, since gRPC sends no others.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Protocol

import grpc
from websockets.asyncio.client import ClientConnection, connect

from ch05_protocols.speech.v1.speech_pb2 import (
    RecognitionConfig,
    StreamingConfig,
    StreamingRecognizeRequest,
    StreamingRecognizeResponse,
)
from ch05_protocols.speech.v1.speech_pb2_grpc import SpeechStub
from ch05_protocols.ws_client import base64_frame

TRANSPORTS = ("ws_binary", "ws_base64", "grpc")
Call = grpc.aio.StreamStreamCall[StreamingRecognizeRequest,
                                StreamingRecognizeResponse]
QUERY = "?encoding=linear16&sample_rate=16000&interim_results=true"


class Link(Protocol):
    async def send(self, chunk: bytes) -> None: ...
    async def finish(self) -> None: ...  # no more audio
    def results(self) -> AsyncIterator[float]: ...  # stream time reached
    async def close(self) -> None: ...


class SocketLink:
    """A WebSocket stream, audio framed as binary or as base64 JSON."""

    def __init__(self, socket: ClientConnection, base64: bool) -> None:
        self.socket, self.base64 = socket, base64

    async def send(self, chunk: bytes) -> None:
        await self.socket.send(base64_frame(chunk) if self.base64
                               else chunk)

    async def finish(self) -> None:
        await self.socket.send(json.dumps({"type": "close"}))

    async def results(self) -> AsyncIterator[float]:
        async for raw in self.socket:
            message = json.loads(raw)
            if message["type"] == "closed":
                return
            if message["type"] == "transcript" and message["words"]:
                yield float(message["end"])

    async def close(self) -> None:
        await self.socket.close()


class GrpcLink:
    """A `StreamingRecognize` call on a channel of its own."""

    def __init__(self, channel: grpc.aio.Channel,
                 call: Call) -> None:
        self.channel, self.call = channel, call

    async def send(self, chunk: bytes) -> None:
        await self.call.write(StreamingRecognizeRequest(audio_content=chunk))

    async def finish(self) -> None:
        await self.call.done_writing()

    async def results(self) -> AsyncIterator[float]:
        while isinstance(response := await self.call.read(),
                         StreamingRecognizeResponse):
            for result in response.results:
                end = result.result_end_time.ToTimedelta()
                yield end.total_seconds()

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


async def open_link(transport: str, port: int, key: str) -> Link:
    if transport == "grpc":
        # A connection per stream, as separate clients would have: by
        # default channels to one address share a connection.
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.use_local_subchannel_pool", 1)])
        call = SpeechStub(channel).StreamingRecognize(
            metadata=(("authorization", f"Bearer {key}"),))
        await call.write(StreamingRecognizeRequest(
            streaming_config=StreamingConfig(
                config=RecognitionConfig(
                    encoding=RecognitionConfig.LINEAR16,
                    sample_rate_hertz=16_000, language_code="en-US"),
                interim_results=True)))
        return GrpcLink(channel, call)
    framing = transport.removeprefix("ws_")
    socket = await connect(
        f"ws://127.0.0.1:{port}/ws/{framing}{QUERY}",
        additional_headers={"Authorization": f"Token {key}"},
        compression=None, open_timeout=30, ping_interval=None)
    return SocketLink(socket, base64=framing == "base64")
