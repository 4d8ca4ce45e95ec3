"""Benchmark of chapter 5: protocols for streaming audio, measured.

Each section is a function returning named figures; `run()` merges
them. The stall section streams the conversation fixture through a link
that stalls for 4 s, once buffering and once dropping stale audio
(`python -m ch05_protocols.stall`), and records chunk-to-result latency
(p50, p95) over the 10 s after the stall, the reference words lost and
the audio dropped. The compare section sends the same fixture over
binary WebSocket, base64 WebSocket and gRPC
(`python -m ch05_protocols.compare`): bytes on the wire per audio
second, CPU per audio second, latency on a grid of real-time streams,
and each transport's capacity at p99 <= 100 ms; its plot goes to
build/ch05/compare.png.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ch05_protocols.compare import compare, figures, plot, show
from ch05_protocols.stall import stall_figures

Figures = dict[str, float]
PLOT = Path(__file__).resolve().parent.parent / "build/ch05/compare.png"


def stall_section() -> Figures:
    return stall_figures()


def compare_section() -> Figures:
    results = asyncio.run(compare(report=show))
    plot(results, PLOT)
    return figures(results)


def run() -> Figures:
    return {**stall_section(), **compare_section()}
