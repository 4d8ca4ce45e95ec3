"""The client times results from when their audio was spoken.

A scripted server answers the client's chunks with results at known
word times, and a fake clock that only the test moves says when each
chunk was captured and each answer arrived, so every latency is exact.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.server import ServerConnection, serve

from ch04_streaming.client import (
    DIALECTS,
    AudioClock,
    ClientAudio,
    Report,
    frame_header_bytes,
    stream,
)

INFERENCE_S = 0.05  # the scripted server's time to answer a chunk
RATE = 16_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.interim_read = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)  # let others run; no real time passes


def results(first: float, last: float, is_final: bool) -> str:
    words = [{"word": "hello", "start": first, "end": last}]
    return json.dumps({
        "type": "Results", "start": 0.0, "is_final": is_final,
        "channel": {"alternatives": [
            {"transcript": "hello", "words": words}]},
    })


@asynccontextmanager
async def scripted_server(clock: FakeClock) -> AsyncIterator[str]:
    """Answers the one chunk with an interim whose word starts 10 ms into
    it, and the client's CloseStream with the final once the client has
    read the interim. Only the server moves the clock once the chunk is
    sent, so every time is exact."""

    async def answer(socket: ServerConnection) -> None:
        async for message in socket:
            closing = isinstance(message, str)
            if closing:  # the interim must be read before time moves on
                await clock.interim_read.wait()
            clock.now += INFERENCE_S
            await socket.send(results(0.01, 0.08, is_final=closing))
            if closing:
                break
        await socket.close()

    async with serve(answer, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def stream_one_chunk(realtime: bool) -> Report:
    clock = FakeClock()
    audio = ClientAudio(bytes(2 * RATE // 10), "linear16", RATE)  # 100 ms
    async with scripted_server(clock) as url:
        async with asyncio.timeout(10):
            return await stream(url, DIALECTS["deepgram"], "key", audio,
                                chunk_ms=100, realtime=realtime,
                                clock=clock, sleep=clock.sleep,
                                on_result=lambda _: clock.interim_read.set())


async def test_paced_first_result_counts_the_chunks_fill_time() -> None:
    report = await stream_one_chunk(realtime=True)
    # The word began 10 ms into a 100 ms chunk: 90 ms of filling, then
    # the server's 50 ms. Timed from the send it would be 50 ms.
    assert report.first_result_s == pytest.approx(0.09 + INFERENCE_S)
    (utterance,) = report.utterances
    assert utterance.first_result_s == pytest.approx(0.09 + INFERENCE_S)
    assert utterance.first_result_at == pytest.approx(0.1 + INFERENCE_S)
    # The last word ended at 80 ms; the final came after two answers.
    assert utterance.final_at == pytest.approx(0.1 + 2 * INFERENCE_S)
    assert utterance.final_latency_s == pytest.approx(
        0.02 + 2 * INFERENCE_S)
    assert report.finals[0].latency_s == utterance.final_latency_s


async def test_unpaced_results_are_timed_from_the_send() -> None:
    report = await stream_one_chunk(realtime=False)
    assert not report.audio_clock.paced
    assert report.first_result_s == pytest.approx(INFERENCE_S)


async def test_bytes_and_frame_headers_are_counted_each_way() -> None:
    report = await stream_one_chunk(realtime=True)
    close = len(json.dumps({"type": "CloseStream"}))
    assert report.bytes_sent == 3_200 + close
    assert report.framing_sent == (2 + 2 + 4) + (2 + 4)
    answers = [results(0.01, 0.08, final) for final in (False, True)]
    assert report.bytes_received == sum(len(a) for a in answers)
    assert all(len(a) >= 126 for a in answers)  # a 2-byte length each
    assert report.framing_received == 2 * (2 + 2)


def test_frame_headers_grow_with_the_payload() -> None:
    assert frame_header_bytes(125, masked=False) == 2
    assert frame_header_bytes(126, masked=True) == 8
    assert frame_header_bytes(70_000, masked=False) == 10


def test_the_audio_clock_dates_paced_audio_by_capture() -> None:
    clock = AudioClock(paced=True, origin=5.0)
    clock.record(0.1, at=5.3)  # sent late: the moment spoken is unchanged
    assert clock.time_of(0.01) == pytest.approx(5.01)
