"""`python -m ch06_pipeline` as its own process, as an operator runs it.

Both transports hear their fixtures through one pipeline, `/metrics`
shows the pipeline's and the accelerator's metrics, SIGTERM drains and
exits 0, and bad flags stop it with status 2 and the flag's name.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import urllib.request

import grpc
import pytest

from ch04_streaming.client import (
    ClientAudio,
    DeepgramClient,
    load_audio,
    stream,
)
from ch05_protocols.speech.v1.speech_pb2 import StreamingRecognizeResponse
from examples.service import running_service, wait_until_ready
from examples.stream_grpc import Pace, recognize
from tests.ch04.harness import audio_of, reference
from tests.ch05.grpc_harness import finals

TIMEOUT_S = 60.0
KEY = "pipeline-key"
ENV = {"SPEECH_API_KEYS": KEY, "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}
GRPC_PORT = re.compile(r"gRPC streaming on grpc://127\.0\.0\.1:(\d+)")
FOX, WEATHER = "quick_brown_fox", "weather_forecast"


def metrics(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


async def test_the_service_serves_both_transports_and_drains() -> None:
    args = ("-m", "ch06_pipeline", "--port", "0", "--grpc-port", "0")
    async with running_service(args, ENV) as service:
        found = GRPC_PORT.search("".join(service.banner))
        assert found is not None, service.banner
        await wait_until_ready(service.port)
        audio = load_audio(audio_of(FOX))
        async with (grpc.aio.insecure_channel(
                f"127.0.0.1:{found.group(1)}") as channel,
                asyncio.timeout(TIMEOUT_S)):
            report, responses = await asyncio.gather(
                stream(f"ws://127.0.0.1:{service.port}", DeepgramClient(),
                       KEY, audio),
                collect(channel, load_audio(audio_of(WEATHER))))
        exposed = await asyncio.to_thread(metrics, service.port)
        service.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT_S):
            exit_code = await service.process.wait()
    assert report.transcript == reference(FOX)
    assert finals(responses) == reference(WEATHER)
    for name in ("pipeline_queue_wait_seconds_count",
                 "pipeline_batch_size_count", "pipeline_degradation_level",
                 "pipeline_drops_total", "speech_final_latency_seconds",
                 "DCGM_FI_DEV_GPU_UTIL"):
        assert name in exposed, name
    assert exit_code == 0


async def collect(channel: grpc.aio.Channel, audio: ClientAudio
                  ) -> list[StreamingRecognizeResponse]:
    return [r async for r in recognize(channel, audio, KEY,
                                       Pace(realtime=False))]


@pytest.mark.parametrize("flags, named", [
    (["--max-batch-size", "0"], "--max-batch-size"),
    (["--matcher", "gpu"], "--matcher"),
    (["--profile", "fast"], "--profile"),
    (["--degrade-raise-ms", "50,80"], "--degrade-raise-ms"),
    (["--max-wait-ms", "-1"], "--max-wait-ms"),
    (["--port", "eighty"], "--port"),
])
def test_bad_flags_stop_with_status_2(flags: list[str], named: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ch06_pipeline", *flags],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 2
    assert named in done.stderr
