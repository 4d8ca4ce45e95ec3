"""Traces through the pipeline: the span tree and the batch links.

Spans go to OpenTelemetry's in-memory exporter. A stream's span is the
child of the client's W3C `traceparent` (WebSocket upgrade header, or
gRPC metadata); each utterance is a child of its stream; each batch is
a root of its own whose links name the utterances it decoded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from ch04_streaming.auth import ApiKeys
from ch04_streaming.client import DeepgramClient, load_audio, stream
from ch04_streaming.mock_matcher import Lexicon
from ch05_protocols.speech.v1.speech_pb2_grpc import SpeechStub
from ch06_pipeline.app import build_pipeline
from ch06_pipeline.tracing import build_tracing
from examples.stream_grpc import Pace, requests
from tests.ch04.harness import audio_of, reference
from tests.ch05.grpc_harness import finals, metadata
from tests.ch06.harness import (
    KEY,
    TIMEOUT_S,
    mock_models,
    pipeline_settings,
    running_pipeline,
)

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


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: keeps what is posted to /v1/traces."""

    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"],
                              body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


async def test_spans_reach_a_collector_when_an_endpoint_is_set(
        lexicon: Lexicon) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    settings = pipeline_settings()
    settings = replace(settings, env={"OTEL_EXPORTER_OTLP_ENDPOINT":
                                      endpoint})
    pipeline = build_pipeline(settings, ApiKeys.of(KEY),
                              models=mock_models(lexicon))
    await pipeline.start("127.0.0.1", 0, 0)
    await pipeline.start_models()
    async with asyncio.timeout(TIMEOUT_S):
        await stream(f"ws://127.0.0.1:{pipeline.speech.port}",
                     TracedDeepgram(), KEY, load_audio(audio_of(FOX)))
        await pipeline.stop()  # flushes the exporter
    server.shutdown()
    server.server_close()
    names = set()
    for path, content_type, body in Collector.received:
        assert path == "/v1/traces"
        assert content_type == "application/x-protobuf"
        request = ExportTraceServiceRequest.FromString(body)
        names |= {span.name for resource in request.resource_spans
                  for scope in resource.scope_spans
                  for span in scope.spans}
    assert {"stream", "utterance", "inference batch"} <= names


def test_without_an_endpoint_nothing_is_exported() -> None:
    tracing = build_tracing({})
    assert tracing.provider is None
    assert not tracing.tracer.start_span("stream").is_recording()
