"""Traces through the pipeline: the span tree and the batch links.

Spans go to OpenTelemetry's in-memory exporter. A stream's span is the
child of the client's W3C `traceparent` (WebSocket upgrade header, or
gRPC metadata); each utterance is a child of its stream; each batch is
a root of its own whose links name the utterances it decoded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from ch04_streaming.client import DeepgramClient, load_audio, stream
from ch04_streaming.mock_matcher import Lexicon
from ch05_protocols.speech.v1.speech_pb2_grpc import SpeechStub
from examples.stream_grpc import Pace, requests
from tests.ch04.harness import audio_of, reference
from tests.ch05.grpc_harness import finals, metadata
from tests.ch06.harness import KEY, TIMEOUT_S, running_pipeline

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
FOX = "quick_brown_fox"


class TracedDeepgram(DeepgramClient):
    def headers(self, key: str) -> dict[str, str]:
        return {**super().headers(key), "traceparent": TRACEPARENT}


def exporting() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def check_tree(spans: Sequence[ReadableSpan], transport: str) -> None:
    [stream_span] = named(spans, "stream")
    context = stream_span.context
    assert context is not None and stream_span.parent is not None
    assert f"{context.trace_id:032x}" == TRACE_ID
    assert f"{stream_span.parent.span_id:016x}" == PARENT_ID
    assert stream_span.attributes is not None
    assert stream_span.attributes["stream.transport"] == transport
    utterances = named(spans, "utterance")
    assert utterances
    for utterance in utterances:
        assert utterance.parent is not None
        assert utterance.parent.span_id == context.span_id
        assert utterance.context is not None
        assert utterance.context.trace_id == context.trace_id
    batches = named(spans, "inference batch")
    linked = {link.context.span_id for batch in batches
              for link in batch.links}
    ids = {u.context.span_id for u in utterances if u.context}
    assert ids <= linked  # every utterance reached its batches
    for batch in batches:
        assert batch.parent is None  # a root: it serves many traces
        assert batch.context is not None
        assert batch.context.trace_id != context.trace_id
        assert batch.attributes is not None
        assert batch.attributes["batch.size"] == len(batch.links)


async def test_a_websocket_stream_is_traced_from_its_traceparent(
        lexicon: Lexicon) -> None:
    provider, exporter = exporting()
    async with running_pipeline(
            lexicon, tracer=provider.get_tracer("test")) as pipeline:
        async with asyncio.timeout(TIMEOUT_S):
            report = await stream(
                f"ws://127.0.0.1:{pipeline.speech.port}", TracedDeepgram(),
                KEY, load_audio(audio_of(FOX)))
    assert report.transcript == reference(FOX)
    check_tree(exporter.get_finished_spans(), "websocket")


async def test_a_grpc_stream_is_traced_from_its_metadata(
        lexicon: Lexicon) -> None:
    provider, exporter = exporting()
    async with running_pipeline(
            lexicon, tracer=provider.get_tracer("test")) as pipeline:
        address = f"127.0.0.1:{pipeline.grpc.port}"
        async with (grpc.aio.insecure_channel(address) as channel,
                    asyncio.timeout(TIMEOUT_S)):
            call: Any = SpeechStub(channel).StreamingRecognize(
                requests(load_audio(audio_of(FOX)), Pace(realtime=False)),
                metadata=(*metadata(KEY), ("traceparent", TRACEPARENT)))
            responses = [response async for response in call]
    assert finals(responses) == reference(FOX)
    check_tree(exporter.get_finished_spans(), "grpc")
