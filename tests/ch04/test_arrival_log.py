"""The arrival log keeps a bounded horizon of stream time, however long
the stream, and still times what lies inside it."""

from __future__ import annotations

from ch04_streaming.session import ArrivalLog


def test_a_long_stream_keeps_only_its_horizon() -> None:
    log = ArrivalLog(horizon_s=60.0)
    for frame in range(100_000):  # 2.8 hours of 100 ms frames
        log.record(0.1 * (frame + 1), 1000.0 + 0.1 * frame)
    assert len(log._ends) <= 2 * 600 + 1
    assert log.time_of(9_999.95) == 1000.0 + 0.1 * 99_999
    # 50 s back: still inside the horizon, timed exactly
    assert log.time_of(9_950.05) == 1000.0 + 0.1 * 99_500


def test_times_inside_the_horizon_are_exact() -> None:
    log = ArrivalLog(horizon_s=5.0)
    for frame in range(10):
        log.record(0.1 * (frame + 1), float(frame))
    assert log.time_of(0.05) == 0.0
    assert log.time_of(0.25) == 2.0
    assert log.time_of(5.0) is None  # not arrived yet
