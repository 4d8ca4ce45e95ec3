"""Google's API on the chapter 5 gRPC server itself: beside our own
proto, behind the same key check, on the same engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.api_core.exceptions import Unauthenticated
from google.cloud.speech_v1 import (
    SpeechAsyncClient,
    StreamingRecognizeRequest,
)
from google.cloud.speech_v1.services.speech.transports import (
    SpeechGrpcAsyncIOTransport,
)
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ch04_streaming.mock_matcher import Lexicon
from tests.ch04.harness import KEY, reference
from tests.ch05.google_harness import (
    audio_chunks,
    final_transcript,
    requests_for,
    sent,
    streaming_config,
)
from tests.ch05.grpc_harness import TIMEOUT_S, serving


async def google_transcript(port: int, metadata: tuple[tuple[str, str], ...]
                            ) -> str:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    client = SpeechAsyncClient(
        transport=SpeechGrpcAsyncIOTransport(channel=channel))
    requests = requests_for(streaming_config(),
                            audio_chunks("quick_brown_fox"))
    try:
        stream = await client.streaming_recognize(
            requests=sent(requests), metadata=metadata, retry=None,
            timeout=TIMEOUT_S)
        return final_transcript([r async for r in stream])
    finally:
        await channel.close()


async def test_the_official_client_is_served_beside_our_proto(
        lexicon: Lexicon) -> None:
    async with serving(lexicon) as running:
        port = running.built.server.port
        by_bearer = await google_transcript(
            port, (("authorization", f"Bearer {KEY}"),))
        by_api_key = await google_transcript(
            port, (("x-goog-api-key", KEY),))
        channel: Any = running.channel  # the stubs type sync channels
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in stub.ServerReflectionInfo(iter([request])):
            names = {s.name for s in reply.list_services_response.service}
            break
    assert by_bearer == by_api_key == reference("quick_brown_fox")
    assert {"speech.v1.Speech", "google.cloud.speech.v1.Speech"} <= names


async def nothing_yet() -> AsyncIterator[StreamingRecognizeRequest]:
    """A client that opens the call and has not written yet: a client
    still writing when the server ends the call may hear INTERNAL
    instead of the server's status (a grpc-python client matter)."""
    await asyncio.Event().wait()
    yield StreamingRecognizeRequest()


async def test_a_google_call_without_a_key_is_refused(
        lexicon: Lexicon) -> None:
    async with serving(lexicon) as running:
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{running.built.server.port}")
        client = SpeechAsyncClient(
            transport=SpeechGrpcAsyncIOTransport(channel=channel))
        with pytest.raises(Unauthenticated) as refused:
            stream = await client.streaming_recognize(
                requests=nothing_yet(), retry=None, timeout=TIMEOUT_S)
            async for _ in stream:
                pass
        await channel.close()
    assert "key" in str(refused.value).lower()
