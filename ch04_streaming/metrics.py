"""Service metrics in Prometheus form, the raw material of SLOs.

Chapter 4, and the SLIs of chapter 11. Counters say how many streams
came, how many were refused and why, how many ended in an error, and how
much audio reached the model; histograms time, per utterance, the delay
from the audio of the first word arriving to the first result leaving,
and from the audio of the last word arriving to the final leaving; the
event loop's lag says when CPU work stalls every stream at once. Each
server has its own registry, so several can run in one process (tests).
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Around the book's thresholds: 100 ms (agents), 300 ms (voice AI),
# 800 ms (final latency of a 3 s utterance).
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0,
                   1.5, 2.0, 5.0)
ORDERLY_CLOSES = (1000, 1001)
LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02,
               0.03, 0.05, 0.1, 0.2, 0.5, 1.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.streams = Counter(
            "speech_streams", "Streams admitted", ["dialect"],
            registry=self.registry)
        self.stream_errors = Counter(
            "speech_streams_errors", "Streams the server closed on an error",
            ["dialect", "code"], registry=self.registry)
        self.rejections = Counter(
            "speech_rejections", "Requests refused before the upgrade",
            ["status"], registry=self.registry)
        self.active = Gauge(
            "speech_active_streams", "Streams open now",
            registry=self.registry)
        self.first_result = Histogram(
            "speech_first_result_seconds",
            "First word's audio in to first result out, per utterance",
            ["dialect"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.final_latency = Histogram(
            "speech_final_latency_seconds",
            "Last word's audio in to final result out, per utterance",
            ["dialect"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.audio = Counter(
            "speech_audio_seconds", "Audio received", ["dialect"],
            registry=self.registry)
        self.inference_audio = Counter(
            "speech_inference_audio_seconds",
            "Audio the VAD let through to the model", ["dialect"],
            registry=self.registry)
        self.interims_skipped = Counter(
            "speech_interims_skipped",
            "Interim updates skipped while inference lagged", ["dialect"],
            registry=self.registry)
        self.dropped_audio = Counter(
            "speech_dropped_audio_seconds",
            "Stale audio dropped by streams that asked to drop it",
            ["dialect"], registry=self.registry)
        self.loop_lag = Histogram(
            "speech_event_loop_lag_seconds",
            "How late the event loop ran a timer: work that blocks it",
            buckets=LAG_BUCKETS, registry=self.registry)

    def stream_closed(self, dialect: str, code: int | None,
                      audio_s: float, inference_s: float,
                      interims_skipped: int, dropped_s: float = 0.0
                      ) -> None:
        self.active.dec()
        if code is not None and code not in ORDERLY_CLOSES:
            self.stream_errors.labels(dialect, str(code)).inc()
        self.audio.labels(dialect).inc(audio_s)
        self.inference_audio.labels(dialect).inc(inference_s)
        self.interims_skipped.labels(dialect).inc(interims_skipped)
        self.dropped_audio.labels(dialect).inc(dropped_s)

    def stream_opened(self, dialect: str) -> None:
        self.streams.labels(dialect).inc()
        self.active.inc()

    def exposition(self) -> bytes:
        body: bytes = generate_latest(self.registry)
        return body


async def probe_loop_lag(histogram: Histogram,
                         interval_s: float = 0.05) -> None:
    """Sleep `interval_s` again and again; the oversleep is the time the
    loop spent on something else and could not serve any stream."""
    while True:
        asked = time.perf_counter()
        await asyncio.sleep(interval_s)
        histogram.observe(max(0.0, time.perf_counter() - asked - interval_s))
