"""Chapter 5's gRPC service behind chapter 9's credentials, per call.

gRPC carries a credential as call metadata, checked when the call
opens; a call may then stream for hours. Revoking its key ends it with
UNAUTHENTICATED within the watch's poll, as it ends a WebSocket stream;
a key without the `listen` scope is refused PERMISSION_DENIED.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.api_core.exceptions import Unauthenticated
from google.cloud.speech_v1 import SpeechAsyncClient
from google.cloud.speech_v1.services.speech.transports import (
    SpeechGrpcAsyncIOTransport,
)

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.auth import ApiKeys
from ch04_streaming.engine import LocalMatching, MockRecognizer
from ch04_streaming.mock_matcher import Lexicon
from ch05_protocols.app import build_grpc_server
from ch05_protocols.settings import GrpcSettings
from ch05_protocols.speech.v1.speech_pb2 import StreamingRecognizeRequest
from ch05_protocols.speech.v1.speech_pb2_grpc import SpeechStub
from ch07_api import database
from ch09_security.key_store import KeyHasher, KeyStore, Scope
from ch09_security.keys_cli import now_ms
from ch09_security.security_layer import SecurityLayer, security_layer
from tests.ch04.harness import reference
from tests.ch05.google_harness import (
    audio_chunks,
    requests_for,
    streaming_config,
    then_stall,
)
from tests.ch05.grpc_harness import (
    TIMEOUT_S,
    audio_requests,
    finals,
    fixture_audio,
    metadata,
)
from tests.ch09.conftest import SECRET

REVOCATION_BOUND_S = 2.0


@dataclass
class GrpcService:
    port: int
    store: KeyStore
    layer: SecurityLayer


@asynccontextmanager
async def secured_grpc(lexicon: Lexicon, tmp_path: Path
                       ) -> AsyncIterator[GrpcService]:
    store = KeyStore(database.open_engine(f"sqlite:///{tmp_path}/k.db"),
                     KeyHasher(SECRET), now_ms)
    store.create_schema()
    layer = security_layer(store, ApiKeys(()), poll_s=0.1)
    recognizer = MockRecognizer(LocalMatching(lexicon),
                                Accelerator(PROFILES["zero"]))
    built = build_grpc_server(GrpcSettings(shutdown_grace_s=2.0),
                              layer.credentials, layer.guard,
                              recognizer=recognizer)
    await built.server.start("127.0.0.1", 0)
    await recognizer.start()
    watching = asyncio.create_task(layer.watch.run())
    try:
        yield GrpcService(built.server.port, store, layer)
    finally:
        layer.watch.stop()
        await watching
        await built.server.shutdown()
        store.engine.dispose()


async def held_open(first: list[StreamingRecognizeRequest],
                    release: asyncio.Event
                    ) -> AsyncIterator[StreamingRecognizeRequest]:
    """The config and some audio, then a client that keeps the call."""
    for request in first:
        yield request
    await release.wait()


async def test_a_key_streams_and_its_revocation_ends_the_call(
    lexicon: Lexicon, tmp_path: Path,
) -> None:
    async with secured_grpc(lexicon, tmp_path) as service, \
            grpc.aio.insecure_channel(f"127.0.0.1:{service.port}"
                                      ) as channel:
        made = service.store.create("acme", [Scope.LISTEN])
        stub = SpeechStub(channel)
        whole = stub.StreamingRecognize(
            iter(audio_requests(fixture_audio("quick_brown_fox"))),
            metadata=metadata(made.key), timeout=TIMEOUT_S)
        assert finals([r async for r in whole]) == (
            reference("quick_brown_fox"))
        release = asyncio.Event()
        call = stub.StreamingRecognize(
            held_open(audio_requests(fixture_audio("weather_forecast"))[:6],
                      release),
            metadata=metadata(made.key), timeout=TIMEOUT_S)
        async with asyncio.timeout(TIMEOUT_S):  # admitted, followed
            while len(service.layer.guard.streams) == 0:
                await asyncio.sleep(0.01)
        service.store.revoke(made.record.key_id)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async with asyncio.timeout(REVOCATION_BOUND_S):
                async for _ in call:
                    pass
        release.set()
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert ended.value.details() == (
        "credential no longer valid: API key revoked")


async def test_a_key_without_listen_is_refused_and_a_forgery_too(
    lexicon: Lexicon, tmp_path: Path,
) -> None:
    async with secured_grpc(lexicon, tmp_path) as service, \
            grpc.aio.insecure_channel(f"127.0.0.1:{service.port}"
                                      ) as channel:
        reader = service.store.create("acme", [Scope.USAGE_READ])
        stub = SpeechStub(channel)
        config = audio_requests(fixture_audio("quick_brown_fox"))[:1]
        refusals = []
        # The config alone, then nothing: a client still writing when
        # its call is refused may hear INTERNAL from grpc-python.
        release = asyncio.Event()
        for key in (reader.key, "spk_" + "A" * 36):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                call = stub.StreamingRecognize(
                    held_open(config, release), metadata=metadata(key),
                    timeout=TIMEOUT_S)
                async for _ in call:
                    pass
            refusals.append(refused.value.code())
        release.set()
    assert refusals == [grpc.StatusCode.PERMISSION_DENIED,
                        grpc.StatusCode.UNAUTHENTICATED]


async def test_googles_client_hears_its_revoked_key_end_the_stream(
    lexicon: Lexicon, tmp_path: Path,
) -> None:
    """Google's API, mounted beside ours, ends the stream alike: the
    official client raises its Unauthenticated."""
    async with secured_grpc(lexicon, tmp_path) as service:
        made = service.store.create("acme", [Scope.LISTEN])
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
        client = SpeechAsyncClient(
            transport=SpeechGrpcAsyncIOTransport(channel=channel))
        requests = requests_for(streaming_config(),
                                audio_chunks("weather_forecast")[:5])
        responses = await client.streaming_recognize(
            requests=then_stall(requests),
            metadata=(("authorization", f"Bearer {made.key}"),))
        async with asyncio.timeout(TIMEOUT_S):  # admitted, followed
            while len(service.layer.guard.streams) == 0:
                await asyncio.sleep(0.01)
        service.store.revoke(made.record.key_id)
        with pytest.raises(Unauthenticated) as ended:
            async with asyncio.timeout(REVOCATION_BOUND_S):
                async for _ in responses:
                    pass
        await channel.close()
    assert "credential no longer valid: API key revoked" in str(
        ended.value)
