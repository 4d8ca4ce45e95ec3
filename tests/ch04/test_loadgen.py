"""The chapter 4 load generator measures what it claims, at small N."""

from __future__ import annotations

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from bench.ch04_streaming import LISTEN, Workload, percentile, workload
from bench.echo_server import echo, echo_after_vad
from bench.loadgen import run_load
from bench.stage_costs import stage_costs
from tests.ch04.harness import KEY, Start


def test_workload_times_only_chunks_inside_utterances() -> None:
    load = workload()
    assert all(len(c) == 3200 for c in load.chunks)
    assert 0.5 < sum(load.speech) / len(load.speech) < 0.9
    assert not any(load.speech[:5])  # the first 0.5 s is silence


def test_percentile_picks_from_the_sorted_values() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile([1.0, 2.0], 0.99) == 2.0


async def test_echo_latency_is_measured_per_timed_chunk() -> None:
    load = Workload([b"\0" * 3200] * 20, [True] * 20)
    async with serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        logs = await run_load(f"ws://127.0.0.1:{port}", {}, load.chunks,
                              load.speech, streams=3, echo=True,
                              warmup_s=0.2, measure_s=0.5)
    assert all(log.failed is None for log in logs)
    counts = [len(log.latencies_s) for log in logs]
    assert all(4 <= n <= 6 for n in counts)  # 0.5 s of 100 ms chunks
    assert max(t for log in logs for t in log.latencies_s) < 0.1


async def test_speech_results_cover_the_chunks_they_reach(
    start_server: Start,
) -> None:
    load = workload()
    async with start_server() as running:
        logs = await run_load(running.url + LISTEN,
                              {"Authorization": f"Token {KEY}"},
                              load.chunks, load.speech, streams=2,
                              echo=False, warmup_s=0.2, measure_s=1.5)
    timed = [t for log in logs for t in log.latencies_s]
    assert timed, "speech chunks in the window were covered by results"
    assert max(timed) < 0.1


async def test_echo_after_vad_echoes_every_frame_unchanged() -> None:
    load = workload()
    chunks = load.chunks[:12]  # silence, then the first words
    async with serve(echo_after_vad, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as socket:
            for chunk in chunks:
                await socket.send(chunk)
                assert await socket.recv() == chunk
            await socket.send("not audio")  # text is echoed, not decoded
            assert await socket.recv() == "not audio"


def test_stage_costs_name_every_stage_with_a_positive_cost() -> None:
    load = workload()
    costs = stage_costs(b"".join(load.chunks[:50]), passes=1)
    assert {name.removeprefix("stage_us_per_chunk_") for name in costs} == {
        "decode", "level_floor", "flatness_guard", "pcm16_for_webrtcvad",
        "webrtcvad", "vad_gate", "session", "result_message"}
    assert all(cost > 0 for cost in costs.values())
    # The whole includes its parts.
    assert costs["stage_us_per_chunk_session"] > costs[
        "stage_us_per_chunk_decode"]
