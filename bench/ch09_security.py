"""Chapter 9 benchmark: what keeping audio encrypted at rest costs.

`aes_gcm_mb_per_s`: 1 MiB objects sealed with AES-256-GCM, each under a
fresh data key wrapped by its owner's KEK (`bench/envelope_rate.py`).
"""

from __future__ import annotations

from bench.envelope_rate import aes_gcm_mb_per_s


def run() -> dict[str, float]:
    return {"aes_gcm_mb_per_s": round(aes_gcm_mb_per_s(), 1)}
