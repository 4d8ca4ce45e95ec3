"""Benchmark of chapter 7: the API layer's share of a stream's latency.

`python -m ch07_api` runs as its own process, with the full mock engine
(chapter 6's pipeline, its matcher in a worker process), and the load
client (`examples.sse_load`, raw asyncio sockets, in this process)
keeps N streaming transcriptions of the 5.6 s fixture in flight: each
client sends the next as soon as its stream ended (a closed loop), for
20 s after a 5 s warm-up. Per request: the time to the first SSE event
(`transcript.text.delta`) as the client sees it; the engine's time to
that segment (queue wait for the model and inference, as inference
servers report them apart), which the service sends as the comment
`: engine-ms=N` before it; and their difference, what the API layer
added (upload, form parsing, decoding the file, the SSE frame, the
socket). The figures at 100 concurrent streams are the chapter's; the
same at 1 and 10 show the API layer when the machine has CPU to spare,
and the service's CPU per request says where the cores went.
"""

from __future__ import annotations

import asyncio
import tempfile

from ch05_protocols.service_process import process_cpu_s
from examples.fixtures import load_manifest
from examples.service import running_service, wait_until_ready
from examples.sse_load import run_load, summary

Figures = dict[str, float]
KEY = "bench-key"
FIXTURE = "quick_brown_fox"
DURATION_S = 20.0
WARMUP_S = 5.0
LEVELS = (1, 10, 100)  # concurrent streams; the last is the chapter's


async def measure() -> Figures:
    audio = load_manifest().get(FIXTURE).file()
    figures: Figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SPEECH_API_KEYS": KEY, "CH04_LOAD_S": "0",
               "CH04_WARMUP_S": "0",
               "CH07_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3"}
        async with running_service(("-m", "ch07_api", "--port", "0"),
                                   env) as service:
            await wait_until_ready(service.port)
            for concurrency in LEVELS:
                cpu_before = process_cpu_s(service.pid)
                result = await run_load(service.port, KEY, audio,
                                        concurrency, DURATION_S,
                                        WARMUP_S)
                cpu_s = process_cpu_s(service.pid) - cpu_before
                level = summary(result, concurrency)
                level["server_cpu_ms_per_request"] = (
                    1000 * cpu_s / max(1, result.requests)
                    * DURATION_S / (DURATION_S + WARMUP_S))
                show(level)
                suffix = "" if concurrency == LEVELS[-1] else (
                    f"_at_{concurrency}")
                figures |= {f"{name}{suffix}": value
                            for name, value in level.items()
                            if name != "concurrency"}
    figures["concurrency"] = LEVELS[-1]
    return figures


def show(level: Figures) -> None:
    print(f"  {level['concurrency']:.0f} streams:"
          f" {level['requests_per_s']:.0f} requests/s,"
          f" first event p50 {level['ttfe_p50_ms']:.1f} ms,"
          f" API overhead p50 {level['ttfe_overhead_p50_ms']:.1f} ms"
          f" p99 {level['ttfe_overhead_p99_ms']:.1f} ms,"
          f" errors {level['errors']:.0f}", flush=True)


def run() -> Figures:
    return asyncio.run(measure())
