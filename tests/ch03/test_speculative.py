"""Speculative decoding: the target's own output, fewer target passes."""

from __future__ import annotations

import numpy as np
import pytest

from ch03_gpu.speculative import (
    Bigram,
    acceptance_rate,
    bigram_counts,
    draft_of,
    expected_tokens,
    measure,
    random_model,
    speculative_step,
    speedup,
)
from ch03_gpu.speculative_lab import deviation, main


@pytest.fixture
def models() -> tuple[Bigram, Bigram]:
    rng = np.random.default_rng(11)
    target = random_model(8, rng, sharpness=2.0)
    return target, draft_of(target, 0.6, rng)


def test_output_follows_the_target_not_the_draft(
        models: tuple[Bigram, Bigram]) -> None:
    """The acceptance rule is what makes it lossless: keeping every
    guess would give the draft's odds (a gap near 0.3 here)."""
    target, draft = models
    rng = np.random.default_rng(5)
    spec = bigram_counts(target, draft, 4, 100_000, rng)
    alone = bigram_counts(draft, draft, 0, 100_000, rng)
    assert deviation(spec, target) < 0.02
    assert deviation(alone, target) > 0.1


def test_tokens_per_pass_match_the_formula(
        models: tuple[Bigram, Bigram]) -> None:
    target, draft = models
    alpha = acceptance_rate(target, draft)
    assert 0.5 < alpha < 0.8
    for k in (1, 4):
        got = measure(target, draft, k, 50_000, np.random.default_rng(k))
        assert got.tokens_per_pass == pytest.approx(got.expected, rel=0.03)
        assert got.expected == expected_tokens(alpha, k)


def test_a_perfect_draft_is_always_kept() -> None:
    rng = np.random.default_rng(1)
    target = random_model(8, rng)
    for _ in range(50):
        assert len(speculative_step(target, target, 0, 4, rng)) == 5
    assert acceptance_rate(target, target) == pytest.approx(1.0)


def test_the_formula_and_the_speedup() -> None:
    assert expected_tokens(0.0, 4) == 1.0  # only the replacement
    assert expected_tokens(1.0, 4) == 5.0
    assert expected_tokens(0.5, 2) == pytest.approx(1.75)  # 1 + .5 + .25
    assert speedup(4.0, 4, 0.25) == pytest.approx(2.0)


def test_the_lab_prints_its_table(capsys: pytest.CaptureFixture[str]
                                  ) -> None:
    assert main(["--tokens", "2000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["draft", "noise", "accepted"]
    assert len(lines) == 1 + 12 + 2
    with pytest.raises(SystemExit) as refused:
        main(["--tokens", "10"])
    assert refused.value.code == 2
