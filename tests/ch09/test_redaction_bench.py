"""The chapter 9 benchmark's figures come from timed redactions."""

from __future__ import annotations

import math

from bench.__main__ import discover, validate
from bench.ch09_security import utterances
from ch04_streaming.transcript import Word
from ch09_security.redaction_bench import (
    EVERY_CLASS,
    redaction_costs_ms,
    redaction_figures,
)


def said(text: str) -> tuple[Word, ...]:
    return tuple(Word(w, i * 0.3, i * 0.3 + 0.2)
                 for i, w in enumerate(text.split()))


TINY = [said("call five five five zero one nine nine"), said("hello")]


def test_each_final_and_each_interim_is_timed() -> None:
    finals, interims = redaction_costs_ms(TINY, EVERY_CLASS, rounds=2)
    assert len(finals) == 2 * 2  # two utterances, twice
    assert len(interims) == 2 * 7  # a word at a time, the final apart
    assert all(ms >= 0 for ms in finals + interims)


def test_figures_are_named_finite_milliseconds() -> None:
    figures = validate("ch09_security", redaction_figures(TINY, rounds=1))
    assert set(figures) == {"redaction_added_p99_ms",
                            "redaction_interim_p99_ms"}
    assert all(math.isfinite(v) and v >= 0 for v in figures.values())


def test_the_benchmark_is_registered_and_replays_the_fixtures() -> None:
    assert "ch09_security" in discover()
    replayed = utterances()
    assert any(" ".join(w.text for w in u) ==
               "call me back at five five five zero one nine nine"
               for u in replayed)
