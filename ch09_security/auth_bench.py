"""What checking a credential costs, on every handshake.

Chapter 9, "Authentication for streaming connections" and "Rate
limiting and abuse prevention for inference endpoints". Every upgrade
checks its key or token before anything else, so the check is paid by
every handshake, a storm's included. A key's check, as `KeyVerifier`
runs it (format and checksum, the keyed hash, the cache of verdicts,
then the key's state: revoked, expired, active), is timed with the
cache warm, as a busy key finds it; a token's, as `TokenVerifier` runs
it (the Ed25519 signature and the claims). `make bench` reports the
99th percentile of each, in microseconds.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ch04_streaming.auth import ApiKeys
from ch07_api import database
from ch09_security.key_store import KeyHasher, KeyStore, Scope
from ch09_security.keys_cli import now_ms
from ch09_security.security_layer import security_layer
from ch09_security.token_grants import Granted


def timed_us(check: Callable[[], object], rounds: int) -> list[float]:
    """Microseconds each of `rounds` calls of `check` took."""
    costs = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        check()
        costs.append((time.perf_counter_ns() - start) / 1000)
    return costs


def credential_costs_us(directory: Path, rounds: int
                        ) -> tuple[list[float], list[float]]:
    """Each key check's time and each token verification's, on a key
    store in `directory`."""
    store = KeyStore(
        database.open_engine(f"sqlite:///{directory}/keys.sqlite3"),
        KeyHasher(secrets.token_bytes(32)), now_ms)
    store.create_schema()
    try:
        layer = security_layer(store, ApiKeys(()))
        key = store.create("bench", [Scope.LISTEN]).key
        granted = layer.grants.deepgram(f"Token {key}", 3600)
        assert isinstance(granted, Granted), granted
        keys, tokens = layer.credentials.keys, layer.credentials.tokens
        assert keys.check(key).ok  # the cache is warm from here on
        return (timed_us(lambda: keys.check(key), rounds),
                timed_us(lambda: tokens.verify_signed(granted.token),
                         rounds))
    finally:
        store.engine.dispose()


def p99(values: list[float]) -> float:
    return round(float(np.percentile(values, 99)), 2)


def credential_figures(rounds: int) -> dict[str, float]:
    """p99 microseconds of a key's check (cache warm) and of a token's
    full verification (signature and claims, no recent verdict)."""
    with tempfile.TemporaryDirectory() as directory:
        key_us, token_us = credential_costs_us(Path(directory), rounds)
    return {"key_verify_p99_us": p99(key_us),
            "jwt_verify_p99_us": p99(token_us)}
