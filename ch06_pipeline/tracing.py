"""Traces of a streaming pipeline: stream, utterance and batch spans.

Chapter 6, "End-to-end latency tracing through the streaming pipeline".
A request/response trace has one root per request; a stream lives for
minutes and its utterances share batches with other streams'. So each
stream is a span (its parent the client's W3C `traceparent`, from the
WebSocket upgrade or the gRPC metadata), each utterance a child span
from its first audio to its final, and each inference batch a span of
its own whose links name every utterance it served: one batch, many
traces, and from any utterance a way to the batches that decoded it.
Spans go to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is
set, and nowhere (a no-op tracer, no cost) otherwise.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import (
    TraceContextTextMapPropagator,
)

OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class Tracing:
    tracer: Tracer
    provider: TracerProvider | None = None  # None: nothing exported

    def shutdown(self) -> None:
        """Export what is buffered, then stop (at the service's end)."""
        if self.provider is not None:
            self.provider.shutdown()


def build_tracing(env: Mapping[str, str],
                  service: str = "ch06_pipeline") -> Tracing:
    """An exporting tracer when a collector is configured, else none."""
    endpoint = env.get(OTLP_ENDPOINT)
    if not endpoint:
        return Tracing(trace.NoOpTracer())
    # Imported only when used: the exporter pulls in an HTTP stack.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter,
    )

    provider = TracerProvider(
        resource=Resource.create({"service.name": service}))
    # The collector's base address, as the variable gives it; the
    # exporter's own environment variables (headers, timeout) apply.
    exporter = OTLPSpanExporter(
        endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider.get_tracer(service), provider)


@dataclass
class StreamTrace:
    """One stream's span and its utterances' spans still open."""

    span: Span
    open_utterances: set[Span] = field(default_factory=set)

    def end(self, outcome: str) -> None:
        for utterance in self.open_utterances:
            utterance.set_attribute("utterance.outcome", "stream_ended")
            utterance.end()
        self.open_utterances.clear()
        self.span.set_attribute("stream.outcome", outcome)
        self.span.end()


# The stream a task serves: set when the stream is admitted, inherited
# by the tasks that serve it (reader, decode loop), as asyncio copies
# context into every task it creates.
CURRENT_STREAM: contextvars.ContextVar[StreamTrace | None] = (
    contextvars.ContextVar("current_stream", default=None))


def start_stream(tracer: Tracer, headers: Mapping[str, str],
                 stream_id: str, transport: str) -> StreamTrace:
    """The stream's span, child of the client's `traceparent` if any."""
    parent = PROPAGATOR.extract(carrier=dict(headers))
    span = tracer.start_span(
        "stream", context=parent, kind=trace.SpanKind.SERVER,
        attributes={"stream.id": stream_id, "stream.transport": transport})
    stream = StreamTrace(span)
    CURRENT_STREAM.set(stream)
    return stream


def start_utterance(tracer: Tracer, start_s: float, model: str
                    ) -> Span | None:
    """An utterance's span, in the current stream's trace (None when
    no stream is being traced in this task)."""
    stream = CURRENT_STREAM.get()
    if stream is None:
        return None
    span = tracer.start_span(
        "utterance", context=trace.set_span_in_context(stream.span),
        attributes={"utterance.start_s": start_s, "model": model})
    stream.open_utterances.add(span)
    return span


def end_utterance(span: Span, words: int) -> None:
    span.set_attribute("utterance.words", words)
    span.end()
    stream = CURRENT_STREAM.get()
    if stream is not None:
        stream.open_utterances.discard(span)


# --8<-- [start:batch_span_links]
def start_batch(tracer: Tracer, utterances: Sequence[Span | None],
                model: str, audio_s: float) -> Span:
    """A batch's own span, linked to every utterance it decodes: a
    batch serves many traces, so it is a child of none of them."""
    links = [Link(span.get_span_context()) for span in utterances
             if span is not None]
    return tracer.start_span(
        "inference batch", context=trace.set_span_in_context(
            trace.INVALID_SPAN),  # a root: not the caller's trace
        links=links,
        attributes={"batch.size": len(utterances), "model": model,
                    "batch.audio_s": round(audio_s, 3)})
# --8<-- [end:batch_span_links]


def fail(span: Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, str(error)))
