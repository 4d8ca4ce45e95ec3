"""/metrics: the counters and latency histograms chapter 11's SLIs use."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ch04_streaming.client import DIALECTS, load_audio, stream
from tests.ch04.harness import KEY, Start, audio_of

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(http: str) -> Samples:
    def fetch() -> str:
        with urllib.request.urlopen(http + "/metrics", timeout=10) as r:
            return str(r.read().decode())

    text = await asyncio.to_thread(fetch)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_streams_and_latencies_are_counted(start_server: Start) -> None:
    async with start_server() as running:
        report = await stream(running.url, DIALECTS["deepgram"], KEY,
                              load_audio(audio_of("support_call")))
        with pytest.raises(InvalidStatus):
            async with connect(running.url + "/v1/listen"):
                pass  # no key: refused with 401
        async with asyncio.timeout(5):
            while running.server.handlers:
                await asyncio.sleep(0.01)
        samples = await scrape(running.http)
    dg = (("dialect", "deepgram"),)
    assert samples[("speech_streams_total", dg)] == 1
    assert samples[("speech_rejections_total", (("status", "401"),))] == 1
    assert samples[("speech_active_streams", ())] == 0
    finals = len(report.finals)
    assert samples[("speech_final_latency_seconds_count", dg)] == finals
    assert samples[("speech_first_result_seconds_count", dg)] == finals
    assert samples[("speech_audio_seconds_total", dg)] == pytest.approx(
        44.136, abs=0.01)
    passed = samples[("speech_inference_audio_seconds_total", dg)]
    assert 30 < passed < 44  # the VAD kept the pauses out
    assert not any(name == "speech_streams_errors_total"
                   for name, _ in samples)


async def test_streams_closed_on_an_error_are_counted_by_code(
    start_server: Start,
) -> None:
    async with start_server() as running:
        socket = await connect(
            running.url + "/v3/ws?sample_rate=16000",
            additional_headers={"Authorization": KEY})
        await socket.send(b"\0\0\0")  # half a sample: 3007
        await socket.wait_closed()
        async with asyncio.timeout(5):
            while running.server.handlers:
                await asyncio.sleep(0.01)
        samples = await scrape(running.http)
    key = ("speech_streams_errors_total",
           (("code", "3007"), ("dialect", "assemblyai")))
    assert samples[key] == 1
