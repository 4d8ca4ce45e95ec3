"""Benchmark of chapter 3: batching policies, and what they buy.

The batching lab's full run in virtual time (2,000 requests a run,
Poisson and bursty arrivals): continuous against static batching on an
LLM's decode, and dynamic batching against a batch of one on the
streaming encoder, each as the ratio of the highest throughput the two
sustain with p95 within the bound (300 ms encoder, 10 s decode) and
as the ratio of capacities; then each policy's sustained throughput
and its p95 there. One function per section, merged by `run()`.
"""

from __future__ import annotations

from ch03_gpu.batching_lab import FULL, batching_figures


def batching_section() -> dict[str, float]:
    return batching_figures(FULL)


def run() -> dict[str, float]:
    return {**batching_section()}
