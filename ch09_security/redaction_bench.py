"""What redaction adds to each result, measured on a stream's words.

Chapter 9, "PII in transcripts: redaction patterns". Redaction runs on
the event loop, between the decode and the send, once per result: its
cost is latency every result pays. Each utterance is replayed as a
stream would see it, an interim for each word and then the final,
through one stream's redactor, and each redaction is timed; `make
bench` reports the 99th percentile of finals and of interims.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from ch04_streaming.transcript import Hypothesis, Word
from ch09_security.interim_safe import InterimSafeRedactor
from ch09_security.redaction import RedactionPolicy
from ch09_security.redaction_params import deepgram_policy

EVERY_CLASS = deepgram_policy({"redact": "pci,pii,numbers"})


def timed_ms(redactor: InterimSafeRedactor, hypothesis: Hypothesis
             ) -> float:
    start = time.perf_counter()
    redactor.redact(hypothesis)
    return (time.perf_counter() - start) * 1000


def redaction_costs_ms(utterances: Sequence[Sequence[Word]],
                       policy: RedactionPolicy, rounds: int
                       ) -> tuple[list[float], list[float]]:
    """The time of each final's redaction, and of each interim's."""
    finals, interims = [], []
    for _ in range(rounds):
        for words in utterances:
            redactor = InterimSafeRedactor(policy)  # a stream's own
            interims += [timed_ms(redactor, Hypothesis(tuple(words[:n]),
                                                       is_final=False))
                         for n in range(1, len(words))]
            finals.append(timed_ms(redactor, Hypothesis(tuple(words),
                                                        is_final=True)))
    return finals, interims


def redaction_figures(utterances: Sequence[Sequence[Word]],
                      rounds: int) -> dict[str, float]:
    """p99 milliseconds a redaction adds to a final and to an interim,
    with every class Deepgram's `redact` takes here."""
    redaction_costs_ms(utterances, EVERY_CLASS, 1)  # warm: first calls
    finals, interims = redaction_costs_ms(utterances, EVERY_CLASS, rounds)
    return {
        "redaction_added_p99_ms": round(float(np.percentile(finals, 99)),
                                        4),
        "redaction_interim_p99_ms": round(
            float(np.percentile(interims or [0.0], 99)), 4),
    }
