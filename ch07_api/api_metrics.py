"""The API's own metrics, beside the pipeline's on one `/metrics`.

Chapter 7, with chapter 11's SLIs in mind: answers by route and status,
transcriptions running now, time to a stream's first event, and
streams whose client left before the end (their inference cancelled).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.responses = Counter(
            "api_responses", "Answers by route and status",
            ["route", "status"], registry=registry)
        self.active = Gauge(
            "api_active_transcriptions", "Transcriptions running now",
            registry=registry)
        self.first_event = Histogram(
            "api_first_event_seconds",
            "Request in to first streamed segment out",
            ["style"], buckets=LATENCY_BUCKETS, registry=registry)
        self.inter_event = Histogram(
            "api_inter_event_seconds",
            "Between two streamed segments of one response: the API's"
            " inter-token latency", ["style"], buckets=LATENCY_BUCKETS,
            registry=registry)
        self.client_gone = Counter(
            "api_streams_client_gone",
            "Streams whose client left first; their inference cancelled",
            registry=registry)
        self.operations = Counter(
            "api_operations", "Long-running operations by outcome",
            ["outcome"], registry=registry)
