"""`python -m ch03_gpu speculate`: what speculative decoding buys, and
proof that it changes nothing the target would have said.

Chapter 3, "Speculative decoding". For drafts that agree with the
target more or less, and for several draft lengths `k`, the table
gives the tokens each target pass yields, measured and as the formula
(1 - a^(k+1)) / (1 - a) predicts from the acceptance rate a, and the
speed-up when a draft step costs a twentieth of a target pass. Then
the output's bigram frequencies against the target's own: speculative
output matches the target, the draft's own does not.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from ch03_gpu.speculative import (
    Bigram,
    acceptance_rate,
    bigram_counts,
    draft_of,
    measure,
    random_model,
    speedup,
)

VOCAB = 32
DRAFT_COST = 0.05  # a draft step, as a share of a target pass


def deviation(counts: np.ndarray, model: Bigram) -> float:
    """Largest gap between observed and `model`'s next-token odds."""
    seen = counts.sum(axis=1, keepdims=True)
    rows = seen[:, 0] > 0
    observed = counts[rows] / seen[rows]
    return float(np.abs(observed - model.probs[rows]).max())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ch03_gpu speculate",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=20_000,
                        help="tokens generated per row (%(default)s)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    if args.tokens < 1_000:
        parser.error("--tokens must be 1000 or more")
    rng = np.random.default_rng(args.seed)
    target = random_model(VOCAB, rng, sharpness=2.0)
    print("draft noise  accepted  k  tokens/pass  formula  speed-up")
    for noise in (0.1, 0.3, 0.6):
        draft = draft_of(target, noise, rng)
        alpha = acceptance_rate(target, draft)
        for k in (1, 2, 4, 8):
            got = measure(target, draft, k, args.tokens, rng)
            print(f"{noise:>11.1f}  {alpha:>8.2f}  {k}  "
                  f"{got.tokens_per_pass:>11.2f}  {got.expected:>7.2f}  "
                  f"{speedup(got.tokens_per_pass, k, DRAFT_COST):>7.2f}x")
    draft = draft_of(target, 0.6, rng)
    spec = bigram_counts(target, draft, 4, args.tokens * 10, rng)
    alone = bigram_counts(draft, draft, 0, args.tokens * 10, rng)
    print(f"\nLargest gap from the target's next-token odds, over"
          f" {args.tokens * 10:,} tokens: speculative"
          f" {deviation(spec, target):.3f}, the draft alone"
          f" {deviation(alone, target):.3f}.")
    return 0
