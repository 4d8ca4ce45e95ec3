"""The pipeline's Prometheus metrics, beside chapter 4's stream metrics.

Chapter 6, "End-to-end latency tracing" and the pipeline metrics of
chapter 11. Chapter 4's registry already counts streams, refusals,
time to first result and final latency; the pipeline adds what lies
between the sessions and the accelerator: how deep the request queue
is and how long requests wait in it, how big batches are and how long
they take against the audio they hold (the real-time factor), every
request dropped and why, and the degradation level.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1,
                0.15, 0.2, 0.3, 0.5, 1.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
RTF_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2,
               0.5, 1.0, 2.0)
# Why a request or a stream was not served as asked.
DROP_REASONS = ("interim_coalesced", "client_gone", "queue_full",
                "item_failed", "model_not_ready", "new_stream_refused")


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry,
                 queue_depth: Callable[[], float],
                 level: Callable[[], float]) -> None:
        self.queue_depth = Gauge(
            "pipeline_queue_depth", "Decode requests waiting for a batch",
            registry=registry)
        self.queue_depth.set_function(queue_depth)
        self.queue_wait = Histogram(
            "pipeline_queue_wait_seconds",
            "Time a decode request waited for its batch",
            buckets=WAIT_BUCKETS, registry=registry)
        self.batch_size = Histogram(
            "pipeline_batch_size", "Requests per inference batch",
            ["model"], buckets=SIZE_BUCKETS, registry=registry)
        self.batch_seconds = Histogram(
            "pipeline_batch_seconds", "Time to run one batch",
            ["model"], buckets=WAIT_BUCKETS, registry=registry)
        self.rtf = Histogram(
            "pipeline_batch_rtf",
            "Batch time over the audio seconds it decoded",
            ["model"], buckets=RTF_BUCKETS, registry=registry)
        self.drops = Counter(
            "pipeline_drops", "Requests or streams not served as asked",
            ["reason"], registry=registry)
        for reason in DROP_REASONS:
            self.drops.labels(reason)
        self.level = Gauge(
            "pipeline_degradation_level",
            "0 normal, 1 fewer interims, 2 no interims, 3 cheaper model,"
            " 4 new streams refused", registry=registry)
        self.level.set_function(level)
        self.level_changes = Counter(
            "pipeline_degradation_changes", "Degradation level changes",
            ["to"], registry=registry)
