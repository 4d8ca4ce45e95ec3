"""Benchmark of chapter 5: protocols for streaming audio, measured.

Each section is a function returning named figures; `run()` merges
them. The stall section streams the conversation fixture through a link
that stalls for 4 s, once buffering and once dropping stale audio
(`python -m ch05_protocols.stall`), and records chunk-to-result latency
(p50, p95) over the 10 s after the stall, the reference words lost and
the audio dropped.
"""

from __future__ import annotations

from ch05_protocols.stall import stall_figures

Figures = dict[str, float]


def stall_section() -> Figures:
    return stall_figures()


def run() -> Figures:
    return {**stall_section()}
