"""A seeded trace of chat requests, with ShareGPT-like lengths.

Chapter 3, "KV cache as the central bottleneck". How much memory an
allocator wastes depends on how lengths vary, so the allocators are
compared on one trace whose prompt and output lengths are lognormal,
with the means the vLLM paper (Kwon et al., SOSP 2023, figure 11)
reports for ShareGPT: 161 prompt tokens and 338 output tokens. As in
vLLM's serving benchmark, a request longer than the context window is
drawn again, never cut short, which would bend the distribution.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


class InvalidRequestError(ValueError):
    """A request no server would accept."""


@dataclass(frozen=True)
class Request:
    """One request: its prompt, then the tokens it will generate.

    A prompt must hold at least one token: a decoder needs something to
    attend to, and servers reject an empty prompt. Zero output tokens is
    valid: a prefill-only request (scoring a text, warming the prefix
    cache) holds its prompt's state for one step and generates nothing.
    """

    request_id: int
    prompt_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1:
            raise InvalidRequestError(
                f"request {self.request_id}: prompt of"
                f" {self.prompt_tokens} tokens; send at least one"
            )
        if self.output_tokens < 0:
            raise InvalidRequestError(
                f"request {self.request_id}: {self.output_tokens}"
                " output tokens; ask for zero or more"
            )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


@dataclass(frozen=True)
class LengthModel:
    """Lognormal prompt and output lengths, and the context window."""

    prompt_mean: float = 161.0
    prompt_sigma: float = 1.0
    output_mean: float = 338.0
    output_sigma: float = 0.9
    max_len: int = 2048  # prompt + output, as for the paper's models

    @staticmethod
    def mu(mean: float, sigma: float) -> float:
        # A lognormal's mean is exp(mu + sigma**2 / 2).
        return math.log(mean) - sigma**2 / 2


SHAREGPT_LIKE = LengthModel()


def generate_trace(
    count: int, seed: int, lengths: LengthModel = SHAREGPT_LIKE
) -> list[Request]:
    """`count` requests, the same ones for the same seed."""
    rng = random.Random(seed)
    prompt_mu = lengths.mu(lengths.prompt_mean, lengths.prompt_sigma)
    output_mu = lengths.mu(lengths.output_mean, lengths.output_sigma)
    trace: list[Request] = []
    while len(trace) < count:
        prompt = round(rng.lognormvariate(prompt_mu, lengths.prompt_sigma))
        output = round(rng.lognormvariate(output_mu, lengths.output_sigma))
        if prompt >= 1 and prompt + output <= lengths.max_len:
            trace.append(Request(len(trace), prompt, output))
    return trace
