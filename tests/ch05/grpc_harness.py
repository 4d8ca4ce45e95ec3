"""A chapter 5 gRPC server in this process, and what tests send it.

`serving` builds the server through the composition root with the mock
engine on a zero-cost device, listens on a free port, and hands the
test a channel. Hooks and schedulers that tell a test what the server
did (`WatchedHooks`, `BlockingScheduler`) replace sleeps: a test waits
on their queues and events, each wait bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.auth import ApiKeys
from ch04_streaming.client import ClientAudio, load_audio
from ch04_streaming.engine import (
    DecodeRequest,
    LocalMatching,
    MockRecognizer,
    UtteranceDecoder,
)
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.scheduler import DecodeScheduler, DirectScheduler
from ch04_streaming.stream_hooks import (
    NoTracker,
    Refusal,
    StreamStart,
    StreamTracker,
)
from ch04_streaming.transcript import Hypothesis
from ch05_protocols.app import BuiltGrpc, build_grpc_server
from ch05_protocols.settings import GrpcSettings
from ch05_protocols.speech.v1.speech_pb2 import (
    StreamingRecognizeRequest,
    StreamingRecognizeResponse,
)
from ch05_protocols.speech.v1.speech_pb2_grpc import SpeechStub
from examples.stream_grpc import config_request
from tests.ch04.harness import audio_of

KEY = "test-key"
TIMEOUT_S = 10.0
METHOD = "/speech.v1.Speech/StreamingRecognize"


def metadata(key: str = KEY) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def fixture_audio(fixture_id: str) -> ClientAudio:
    return load_audio(audio_of(fixture_id))


def audio_requests(audio: ClientAudio, chunk_ms: int = 100
                   ) -> list[StreamingRecognizeRequest]:
    """The config, then every chunk of the audio."""
    step = audio.bytes_per_second * chunk_ms // 1000
    chunks = [audio.payload[i:i + step]
              for i in range(0, len(audio.payload), step)]
    return [config_request(audio), *(
        StreamingRecognizeRequest(audio_content=c) for c in chunks)]


def finals(responses: Iterable[StreamingRecognizeResponse]) -> str:
    return " ".join(r.alternatives[0].transcript
                    for response in responses for r in response.results
                    if r.is_final)


@dataclass
class WatchedHooks:
    """Admits every stream and tells the test when streams open and
    end; refuses with `refusal` when one is set."""

    started: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    ended: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    refusal: Refusal | None = None
    stop_reason: str | None = None  # returned for every audio frame

    async def admit(self, start: StreamStart) -> StreamTracker | Refusal:
        if self.refusal is not None:
            return self.refusal
        self.started.put_nowait(start.stream_id)
        return WatchedTracker(self, start.stream_id)


@dataclass
class WatchedTracker(NoTracker):
    hooks: WatchedHooks
    stream_id: str

    async def audio(self, seconds: float) -> str | None:
        return self.hooks.stop_reason

    async def ended(self) -> None:
        self.hooks.ended.put_nowait(self.stream_id)


@dataclass
class BlockingScheduler:
    """Decodes never finish; says when one starts and when it was
    cancelled, and counts them."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    decodes: int = 0

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return UtteranceDecoder(start_s)

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        self.decodes += 1
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")


@dataclass
class CountingScheduler:
    """The scheduler the server decodes with, counting its decodes."""

    inner: DecodeScheduler
    decodes: int = 0

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return self.inner.new_utterance(start_s)

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        self.decodes += 1
        return await self.inner.decode(request)


@dataclass
class Running:
    built: BuiltGrpc
    channel: grpc.aio.Channel
    recognizer: MockRecognizer
    counter: CountingScheduler

    @property
    def stub(self) -> Any:
        return SpeechStub(self.channel)

    def call(self, requests: Any, key: str = KEY,
             timeout: float | None = TIMEOUT_S) -> Any:
        return self.stub.StreamingRecognize(
            requests, metadata=metadata(key), timeout=timeout)

    def raw_call(self, requests: Sequence[bytes], key: str = KEY) -> Any:
        """A call that sends bytes as they are, parsed or not."""
        method: Any = self.channel.stream_stream(METHOD)
        return method(iter(requests), metadata=metadata(key),
                      timeout=TIMEOUT_S)


async def ending(call: Any) -> tuple[grpc.StatusCode, str]:
    return await call.code(), await call.details()


async def responses_of(call: Any) -> list[StreamingRecognizeResponse]:
    return [response async for response in call]


async def sent_then_held(
    requests: Sequence[StreamingRecognizeRequest], sent: asyncio.Event,
) -> AsyncIterator[StreamingRecognizeRequest]:
    """Send `requests`, say so, then stay connected sending nothing.

    A test acts on the server only once `sent` is set: a grpc-python
    client still writing when the server ends the call may report
    INTERNAL instead of the server's status.
    """
    for request in requests:
        yield request
    sent.set()
    await asyncio.Event().wait()


async def nothing_yet() -> AsyncIterator[StreamingRecognizeRequest]:
    """A client that opens the call and has not written yet: a client
    still writing when the server ends the call may hear INTERNAL
    instead of the server's status (a grpc-python client matter)."""
    await asyncio.Event().wait()
    yield StreamingRecognizeRequest()


async def responses_until_failed(call: Any
                                 ) -> list[StreamingRecognizeResponse]:
    """What a call sent before it failed: a call's status comes only
    once its responses have been read."""
    responses = []
    try:
        async for response in call:
            responses.append(response)
    except grpc.aio.AioRpcError:
        pass
    return responses


@asynccontextmanager
async def serving(
    lexicon: Lexicon, settings: GrpcSettings | None = None,
    hooks: WatchedHooks | None = None,
    scheduler: DecodeScheduler | None = None, ready: bool = True,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    keys: ApiKeys | None = None,
) -> AsyncIterator[Running]:
    recognizer = MockRecognizer(LocalMatching(lexicon),
                                Accelerator(PROFILES["zero"]))
    settings = settings or GrpcSettings(shutdown_grace_s=2.0)
    counter = CountingScheduler(scheduler or DirectScheduler(recognizer))
    built = build_grpc_server(
        settings, keys=keys or ApiKeys.of(KEY), hooks=hooks,
        interceptors=interceptors, recognizer=recognizer,
        scheduler=counter)
    await built.server.start("127.0.0.1", 0)
    if ready:
        await recognizer.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{built.server.port}")
    try:
        async with asyncio.timeout(TIMEOUT_S * 3):
            yield Running(built, channel, recognizer, counter)
    finally:
        await channel.close()
        await built.server.shutdown()
