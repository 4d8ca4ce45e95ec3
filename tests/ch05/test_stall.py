"""The stall lab: its arithmetic, and one short stall through a socket."""

from __future__ import annotations

import math

import pytest

from ch05_protocols.stall import (
    Fixture,
    ReferenceWord,
    StallSetup,
    StreamRun,
    chunk_latencies,
    main,
    percentile,
    send_time,
    stall_figures,
    words_lost,
)


def test_words_lost_are_the_reference_words_not_heard_in_order() -> None:
    reference = ["please", "check", "the", "status", "of", "my", "order"]
    assert words_lost(reference, reference) == 0
    assert words_lost(reference, ["please", "check", "my", "order"]) == 3
    assert words_lost(reference, ["order", "my", "please"]) == 6
    assert words_lost(reference, []) == 7


def test_percentile_is_a_value_that_was_seen() -> None:
    assert percentile([0.3, 0.1, 0.2], 0.5) == 0.2
    assert percentile([0.3, 0.1, 0.2], 0.95) == 0.3
    assert percentile([], 0.95) == 0.0


def test_chunks_of_the_stall_leave_together_when_it_ends() -> None:
    setup = StallSetup(stall_at_s=6.0, stall_s=4.0)
    assert [send_time(t, setup) for t in (5.9, 6.0, 9.9, 10.0)] == [
        5.9, 10.0, 10.0, 10.0]


def test_latency_counts_speech_chunks_of_the_window_only() -> None:
    """Window 10-12 s; speech 10.0-10.3 s and 11.9-12.5 s. A chunk is
    timed to the first result covering it; one never covered waited
    until the stream closed."""
    setup = StallSetup(stall_at_s=8.0, stall_s=2.0, window_s=2.0)
    fixture = Fixture(b"", (ReferenceWord("one", 10.0, 10.3),
                            ReferenceWord("two", 11.9, 12.5)))
    run = StreamRun(spoken_at=[10.0, 10.1, 10.5, 12.0, 12.1],
                    results=[(10.4, 10.1), (12.9, 11.0)], closed_at=13.0)
    latencies = chunk_latencies(run, fixture, setup)
    # 10.0 is the stall's end, not after it; 10.5 is silence; 12.1 is
    # past the window; 12.0 is never covered.
    assert latencies == [pytest.approx(0.3), pytest.approx(1.0)]


def test_a_short_stall_costs_latency_buffered_and_words_dropped() -> None:
    """A 2 s stall: buffered, every word arrives, late; dropped, the
    stream is live again, and some words are gone."""
    figures = stall_figures(StallSetup(stall_at_s=5.0, stall_s=2.0,
                                       window_s=3.0))
    assert all(math.isfinite(v) for v in figures.values())
    assert figures["stall_latency_p95_ms_drop"] < (
        figures["stall_latency_p95_ms_buffer"])
    assert figures["stall_words_lost_buffer"] <= (
        figures["stall_words_lost_drop"])
    assert figures["stall_dropped_audio_s_drop"] > 0.5


@pytest.mark.parametrize("argv", [["--stall-s", "0"], ["--window-s", "40"]])
def test_bad_flags_stop_the_lab(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
