"""Seeded word errors: reproducible, at about the rates asked for."""

from __future__ import annotations

import pytest

from ch04_streaming.transcript import Word
from ch04_streaming.word_errors import WordErrorInjector

WORDS = [Word(f"w{i}", i * 0.5, i * 0.5 + 0.4) for i in range(2000)]


def test_no_rates_no_errors() -> None:
    injector = WordErrorInjector(seed=1)
    assert not injector.active
    assert injector.apply(WORDS) == WORDS


def test_same_seed_same_mistakes_other_seed_other_mistakes() -> None:
    a, again, b = (
        WordErrorInjector(seed=seed, substitution=0.1, deletion=0.05,
                          insertion=0.05)
        for seed in (7, 7, 8)
    )
    assert again is not a  # a rerun builds its own injector
    assert a.apply(WORDS) == again.apply(WORDS) != WORDS
    assert a.apply(WORDS) != b.apply(WORDS)


def test_rates_are_roughly_honoured() -> None:
    injector = WordErrorInjector(seed=3, substitution=0.1, deletion=0.1,
                                 insertion=0.1)
    out = injector.apply(WORDS)
    kept = {w.text for w in out}
    deleted = sum(1 for w in WORDS if w.text not in kept)
    inserted = sum(1 for w in out if w.text in ("uh", "um", "so"))
    assert 0.15 < deleted / len(WORDS) < 0.25  # deleted or substituted
    assert 0.07 < inserted / len(WORDS) < 0.13


def test_prefix_decisions_do_not_change_as_words_arrive() -> None:
    injector = WordErrorInjector(seed=5, substitution=0.3)
    assert injector.apply(WORDS[:10]) == injector.apply(WORDS[:20])[:10]


@pytest.mark.parametrize(("substitution", "deletion", "insertion"), [
    (-0.1, 0.0, 0.0), (0.0, 1.5, 0.0), (0.0, 0.0, 2.0), (0.6, 0.6, 0.0),
])
def test_impossible_rates_are_refused(
    substitution: float, deletion: float, insertion: float,
) -> None:
    with pytest.raises(ValueError):
        WordErrorInjector(0, substitution, deletion, insertion)
