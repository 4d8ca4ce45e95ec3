"""Chapter 9's benchmark measures sealing, on a tiny input here."""

from __future__ import annotations

import math

import pytest

from bench.__main__ import discover, validate
from bench.envelope_rate import aes_gcm_mb_per_s
from ch09_security import envelope


def test_the_rate_is_of_objects_sealed_with_fresh_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys: list[bytes] = []
    fresh = envelope.new_key

    def counted() -> bytes:
        keys.append(fresh())
        return keys[-1]

    monkeypatch.setattr(envelope, "new_key", counted)
    rate = aes_gcm_mb_per_s(objects=3, object_bytes=4096, passes=2)
    assert math.isfinite(rate) and rate > 0
    assert len(set(keys)) == 3 * 2  # one data key per object sealed
    figures = validate("ch09_security", {"aes_gcm_mb_per_s": rate})
    assert figures == {"aes_gcm_mb_per_s": rate}


def test_the_chapter_has_a_benchmark() -> None:
    assert "ch09_security" in discover()
