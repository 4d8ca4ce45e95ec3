"""Speculative decoding: a cheap draft proposes, the target verifies.

Chapter 3, "Speculative decoding". A small draft model guesses `k`
tokens one by one; the large target model scores all of them in one
pass, which costs about as much as producing one token, since decoding
is bound by reading the weights. Each guess is kept with probability
min(1, p/q); the first one refused is replaced by a draw from what the
target wanted and the draft did not offer, (p - q)+. This rule makes
every token come from the target's own distribution, so the speed-up
costs no quality (Leviathan et al., 2023; Chen et al., 2023). The
models here are bigram tables over a small vocabulary: enough to run
the real algorithm and count what it buys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Table = np.ndarray  # [previous token, next token] -> probability


@dataclass(frozen=True)
class Bigram:
    """A model whose next token depends on the previous one only."""

    probs: Table

    def next(self, previous: int) -> np.ndarray:
        row: np.ndarray = self.probs[previous]
        return row


def random_model(vocab: int, rng: np.random.Generator,
                 sharpness: float = 1.0) -> Bigram:
    logits = rng.normal(size=(vocab, vocab)) * sharpness
    probs = np.exp(logits)
    return Bigram(probs / probs.sum(axis=1, keepdims=True))


def draft_of(target: Bigram, noise: float, rng: np.random.Generator
             ) -> Bigram:
    """A draft that agrees with the target less as `noise` grows."""
    mixed = (1 - noise) * target.probs + noise * random_model(
        len(target.probs), rng).probs
    return Bigram(mixed)


# --8<-- [start:speculative_step]
def speculative_step(target: Bigram, draft: Bigram, previous: int,
                     k: int, rng: np.random.Generator) -> list[int]:
    """One target pass: 1 to k + 1 tokens, each distributed exactly
    as the target alone would have drawn it."""
    guesses, offered, token = [], [], previous
    for _ in range(k):  # the draft runs k cheap steps
        q = draft.next(token)
        token = int(rng.choice(len(q), p=q))
        guesses.append(token)
        offered.append(q)
    kept, token = [], previous
    for guess, q in zip(guesses, offered, strict=True):
        p = target.next(token)  # all k + 1 rows come from one pass
        if rng.random() >= min(1.0, p[guess] / q[guess]):
            # Refused: draw what the target wanted beyond the draft.
            leftover = np.maximum(p - q, 0.0)
            kept.append(int(rng.choice(len(p),
                                       p=leftover / leftover.sum())))
            return kept
        kept.append(guess)
        token = guess
    p = target.next(token)  # every guess kept: one more, free
    kept.append(int(rng.choice(len(p), p=p)))
    return kept
# --8<-- [end:speculative_step]


def stationary(model: Bigram) -> np.ndarray:
    """How often each token comes up in a long run of `model`."""
    values, vectors = np.linalg.eig(model.probs.T)
    vector = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    result: np.ndarray = vector / vector.sum()
    return result


def acceptance_rate(target: Bigram, draft: Bigram) -> float:
    """Chance a guess is kept: per previous token, 1 - the total
    variation distance of the two rows, weighted by how often the
    target's output has that token."""
    per_row = np.minimum(target.probs, draft.probs).sum(axis=1)
    return float(stationary(target) @ per_row)


def expected_tokens(alpha: float, k: int) -> float:
    """Tokens per target pass if each guess is kept with chance alpha:
    (1 - alpha^(k+1)) / (1 - alpha)."""
    if alpha >= 1.0:
        return float(k + 1)
    return (1 - alpha ** (k + 1)) / (1 - alpha)


def speedup(tokens_per_pass: float, k: int, draft_cost: float) -> float:
    """Against one target pass per token, when a draft step costs
    `draft_cost` of a target pass."""
    return tokens_per_pass / (1 + k * draft_cost)


@dataclass(frozen=True)
class Measured:
    k: int
    tokens_per_pass: float
    expected: float


def measure(target: Bigram, draft: Bigram, k: int, tokens: int,
            rng: np.random.Generator) -> Measured:
    """Generate `tokens` tokens speculatively; count target passes."""
    produced, passes, previous = 0, 0, 0
    while produced < tokens:
        step = speculative_step(target, draft, previous, k, rng)
        produced += len(step)
        passes += 1
        previous = step[-1]
    alpha = acceptance_rate(target, draft)
    return Measured(k, produced / passes, expected_tokens(alpha, k))


def bigram_counts(target: Bigram, draft: Bigram, k: int, tokens: int,
                  rng: np.random.Generator) -> np.ndarray:
    """How often each token followed each other in speculative output:
    divided by row, these should be the target's own probabilities."""
    vocab = len(target.probs)
    counts = np.zeros((vocab, vocab))
    previous, produced = 0, 0
    while produced < tokens:
        for token in speculative_step(target, draft, previous, k, rng):
            counts[previous, token] += 1
            previous = token
            produced += 1
    return counts
