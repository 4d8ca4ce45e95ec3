"""The chapter 6 stop of the tour: many streams through one pipeline.

Starts `python -m ch06_pipeline` as its own process, waits for
`/readyz`, runs a short load with `examples.loadgen` (real-time fixture
streams over WebSocket, ramped), prints the load generator's summary
table, then what the pipeline's own metrics say (batches, how many
requests shared each, queue wait, degradation level), and stops the
service with SIGTERM.
"""

from __future__ import annotations

import asyncio
import secrets
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from examples.loadgen_level import Target, run_level
from examples.loadgen_report import summary_table
from examples.service import running_service, wait_until_ready

STREAMS = 40
DURATION_S = 8.0
RAMP_S = 2.0


def pipeline_metrics(port: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("pipeline_") and not sample.labels.get(
                    "le"):
                key = sample.name + "".join(
                    f"[{v}]" for v in sample.labels.values())
                values[key] = values.get(key, 0.0) + sample.value
    return values


async def run() -> None:
    key = "demo-" + secrets.token_hex(8)
    async with running_service(
            ("-m", "ch06_pipeline", "--port", "0", "--grpc-port", "0"),
            {"SPEECH_API_KEYS": key}) as service:
        print(f"pipeline started: pid {service.pid}, port {service.port}")
        await wait_until_ready(service.port)
        print(f"  {STREAMS} real-time streams for {DURATION_S:g} s,"
              f" ramped over {RAMP_S:g} s (python -m examples.loadgen):",
              flush=True)
        target = Target(url=f"ws://127.0.0.1:{service.port}", api_key=key)
        result = await run_level(target, STREAMS, DURATION_S, RAMP_S)
        Console(width=110).print(summary_table([result]))
        seen = await asyncio.to_thread(pipeline_metrics, service.port)
        batches = seen["pipeline_batch_size_count[full]"]
        requests = seen["pipeline_batch_size_sum[full]"]
        waits = seen["pipeline_queue_wait_seconds_sum"]
        print(f"  pipeline: {batches:.0f} batches of {requests / batches:.1f}"
              f" requests on average; mean queue wait"
              f" {waits / requests * 1000:.1f} ms; degradation level"
              f" {seen['pipeline_degradation_level']:.0f}")
    print("pipeline stopped on SIGTERM")


def many_streams() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    many_streams()
