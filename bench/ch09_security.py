"""Benchmark of chapter 9: what redaction and encryption at rest cost.

`redaction_added_p99_ms`: every utterance of the audio fixtures,
replayed word by word (an interim a word, then the final) through a
stream's redactor with every class on (`redact=pci,pii,numbers`); each
redaction is timed. `aes_gcm_mb_per_s`: 1 MiB objects sealed with
AES-256-GCM, each under a fresh data key wrapped by its owner's KEK
(`bench/envelope_rate.py`).
"""

from __future__ import annotations

from bench.envelope_rate import aes_gcm_mb_per_s
from ch04_streaming.transcript import Word
from ch09_security.redaction_bench import redaction_figures
from examples.fixtures import load_manifest

ROUNDS = 200


def utterances() -> list[tuple[Word, ...]]:
    """The fixtures' utterances, as the words a recogniser returns."""
    return [tuple(Word(w.word, w.start, w.end) for w in u.words)
            for fixture in load_manifest().fixtures
            for u in fixture.utterances]


def run() -> dict[str, float]:
    return {**redaction_figures(utterances(), ROUNDS),
            "aes_gcm_mb_per_s": round(aes_gcm_mb_per_s(), 1)}
