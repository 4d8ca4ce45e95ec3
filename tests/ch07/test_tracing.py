"""Each transcription is a span in its client's trace, and chapter 6's
utterance spans hang from it, with the batches that decoded them linked.

A request with a W3C `traceparent` gets a server span in that trace;
an operation's span is in the trace of the request that created it,
though it runs after that request has been answered.
"""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from ch04_streaming.auth import ApiKeys
from ch07_api.app import Parts
from tests.ch07.aip_harness import (
    KEY,
    audio_body,
    fast_settings,
    serving,
    until_done,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def traced() -> tuple[Parts, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    parts = Parts(keys=ApiKeys.of(KEY), tracer=provider.get_tracer("t"))
    return parts, exporter


def in_trace(spans: tuple[ReadableSpan, ...], name: str
             ) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name and s.context is not None
            and f"{s.context.trace_id:032x}" == TRACE_ID]


async def test_a_request_and_its_utterances_are_in_the_clients_trace(
        tmp_path: Path) -> None:
    parts, exporter = traced()
    async with serving(fast_settings(tmp_path), parts) as client:
        answer = await client.post(
            "/v2/transcripts", json=audio_body("support_call"),
            headers={"traceparent": PARENT})
        await until_done(client, answer.json()["name"], "v2")
        await client.post("/v1/transcripts",
                          json=audio_body("quick_brown_fox"),
                          headers={"traceparent": PARENT})
    spans = exporter.get_finished_spans()
    requests = in_trace(spans, "stream")
    assert len(requests) == 2
    assert all(s.attributes and s.attributes["stream.transport"] == "http"
               and s.attributes["stream.outcome"] == "ok"
               for s in requests)
    utterances = in_trace(spans, "utterance")
    parents = {s.parent.span_id for s in utterances if s.parent}
    assert parents == {s.context.span_id for s in requests if s.context}
    assert len(utterances) == 10  # 9 in the call, 1 in the fox
    linked = {link.context.span_id
              for s in spans if s.name == "inference batch"
              for link in s.links}
    assert {s.context.span_id for s in utterances
            if s.context} <= linked
