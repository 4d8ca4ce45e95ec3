"""The chapter 4 load generator measures what it claims, at small N."""

from __future__ import annotations

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from bench.ch04_streaming import (
    LISTEN,
    Measured,
    Workload,
    largest_n,
    percentile,
    workload,
)
from bench.echo_server import echo, echo_after_vad
from bench.loadgen import DRAIN_S, run_load
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
    assert [(log.failed, log.unanswered) for log in logs] == [(None, 0)] * 3
    counts = [len(log.latencies_s) for log in logs]
    assert all(4 <= n <= 6 for n in counts)  # 0.5 s of 100 ms chunks
    assert max(t for log in logs for t in log.latencies_s) < 0.1


async def echo_four(connection: ServerConnection) -> None:
    """Echoes the first four chunks, then nothing: results lost."""
    answered = 0
    async for message in connection:
        if answered < 4:
            answered += 1
            await connection.send(message)


async def test_chunks_never_answered_count_against_the_percentile() -> None:
    load = Workload([b"\0" * 3200] * 20, [True] * 20)
    async with serve(echo_four, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        (log,) = await run_load(f"ws://127.0.0.1:{port}", {}, load.chunks,
                                load.speech, streams=1, echo=True,
                                warmup_s=0.2, measure_s=0.5)
    # About seven chunks go in the window's 0.7 s, the first two of them
    # warm-up: two timed chunks at most are echoed, three or more never.
    # (Which chunk is the first timed one may shift by one with timers.)
    answered = [t for t in log.latencies_s if t < 0.1]
    assert log.failed is None
    assert 1 <= len(answered) <= 2 and 3 <= log.unanswered <= 5
    assert len(log.latencies_s) == len(answered) + log.unanswered
    # Each unanswered chunk counts as the wait it was given.
    assert percentile(log.latencies_s, 0.99) >= DRAIN_S
    assert percentile(log.latencies_s, 0.5) >= DRAIN_S


def measured(streams: int) -> Measured:
    return Measured(streams, 1.0, 2.0, 0, 0, 0.1, 50.0, 0.2)


def test_the_largest_n_is_the_largest_actually_run() -> None:
    # The grid stops after a failure: nothing beyond 1000 was run.
    speech = {n: measured(n) for n in (50, 200, 500, 1000, 750)}
    echo = {n: measured(n) for n in (50, 200, 500)}
    assert largest_n(speech, echo) == 1000
    assert largest_n(echo) == 500
    assert largest_n() == 0


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
    assert [log.unanswered for log in logs] == [0, 0]
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
