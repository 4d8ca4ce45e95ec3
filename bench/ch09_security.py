"""Benchmark of chapter 9: what redaction adds to each result, what a
credential costs each handshake, and what a storm costs other streams.

Redaction: every utterance of the audio fixtures, replayed word by word
(an interim a word, then the final) through a stream's redactor with
every class on (`redact=pci,pii,numbers`); each redaction is timed.

Credentials (`ch09_security/auth_bench.py`): the p99 of a key's check,
cache warm, state included (`key_verify_p99_us`, target 200 us at
most), and of a token's verification (`jwt_verify_p99_us`).

Handshakes: one loop of handshakes (a stream opened and closed, a few
at a time) against `python -m ch09_security serve` with a managed key,
through the whole layer (key check, abuse limits set never to refuse,
stream guard, redacting dialects), and against `python -m
ch04_streaming` with a plain key, each in its own process and without
a model (no audio is sent). Handshakes per second of the server's CPU,
so the client's own speed drops out;
`handshakes_per_s_with_auth_vs_without` is their ratio (target 0.8 at
least).

Storm: fixtures streamed side by side at the pace of speech through the
secured service with chapter 9's default limits, alone, then while
another key's client, in a process of its own, opens 200 handshakes at
once every second; every result's latency, p99, both times.

Encryption at rest: 1 MiB objects sealed with AES-256-GCM, each under a
fresh data key wrapped by its owner's KEK (`bench/envelope_rate.py`):
`aes_gcm_mb_per_s`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import secrets
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from bench.envelope_rate import aes_gcm_mb_per_s
from bench.handshake_load import (
    handshakes,
    result_latencies_ms,
    storm_in_process,
)
from ch04_streaming.transcript import Word
from ch07_api import database
from ch09_security.auth_bench import credential_figures
from ch09_security.key_store import KeyHasher, KeyStore, Scope
from ch09_security.keys_cli import now_ms
from ch09_security.redaction_bench import redaction_figures
from examples.fixtures import load_manifest
from examples.service import running_service, wait_until_ready

ROUNDS = 200  # redaction rounds
CREDENTIAL_ROUNDS = 20_000
HANDSHAKES = 2_000
CONCURRENCY = 8
STORM_PER_SECOND = 200
SPEECH = ("card_number", "call_back", "weather_forecast",
          "quick_brown_fox")  # 5 to 7 s each
PLAIN_KEY = "bench-key"
LISTEN = "/v1/listen?encoding=linear16&sample_rate=16000"
QUICK_START = {"CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}
NO_LIMITS = ("--new-streams-per-minute", "1e9", "--max-streams-per-ip",
             "0", "--max-handshakes-per-ip", "0")
# A closed stream's slot is freed a moment after its client has gone:
# a cap at the handshakes' count could still refuse the next one.
UNCAPPED = "1000000"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def utterances() -> list[tuple[Word, ...]]:
    """The fixtures' utterances, as the words a recogniser returns."""
    return [tuple(Word(w.word, w.start, w.end) for w in u.words)
            for fixture in load_manifest().fixtures
            for u in fixture.utterances]


def cpu_s(pid: int) -> float:
    """CPU seconds a process has used, user and system."""
    fields = Path(f"/proc/{pid}/stat").read_text().split()
    return (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


@dataclass(frozen=True)
class KeyedStore:
    """A key store for a secured service process: where, and its secret."""

    url: str
    secret: str

    @property
    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.url, "KEY_HASH_SECRET": self.secret}

    def create_key(self, owner: str) -> str:
        store = KeyStore(database.open_engine(self.url),
                         KeyHasher(self.secret.encode()), now_ms)
        store.create_schema()
        try:
            return store.create(owner, [Scope.LISTEN]).key
        finally:
            store.engine.dispose()


def secured_service(keys: KeyedStore, *flags: str) -> tuple[
        tuple[str, ...], dict[str, str]]:
    """`python -m ch09_security serve`'s arguments and environment."""
    return (("-m", "ch09_security", "serve", "--port", "0",
             "--api-port", "0", *flags), {**keys.env, **QUICK_START})


async def handshakes_per_cpu_s(args: Sequence[str],
                               env: Mapping[str, str], key: str,
                               count: int) -> float:
    """Handshakes a second of the server's CPU, `count` of them."""
    async with running_service(args, env) as service:
        await wait_until_ready(service.port)
        url = f"ws://127.0.0.1:{service.port}{LISTEN}"
        headers = {"Authorization": f"Token {key}"}
        await handshakes(url, headers, CONCURRENCY, CONCURRENCY)  # warm
        before = cpu_s(service.pid)
        statuses = await handshakes(url, headers, count, CONCURRENCY)
        used = cpu_s(service.pid) - before
    if statuses != {101: count}:
        raise RuntimeError(f"handshakes refused: {dict(statuses)}")
    return count / max(used, 1 / CLOCK_TICKS)


async def handshake_figures(keys: KeyedStore, count: int
                            ) -> dict[str, float]:
    """Handshakes per CPU second with the chapter 9 layer and without."""
    args, env = secured_service(keys, *NO_LIMITS)
    with_auth = await handshakes_per_cpu_s(
        args, {**env, "CH04_RECOGNIZER": "null",
               "CH04_MAX_STREAMS_PER_KEY": UNCAPPED},
        keys.create_key("bench"), count)
    without = await handshakes_per_cpu_s(
        ("-m", "ch04_streaming", "--port", "0", "--recognizer", "null",
         "--max-streams-per-key", UNCAPPED),
        {"SPEECH_API_KEYS": PLAIN_KEY, **QUICK_START}, PLAIN_KEY, count)
    return {"handshakes_per_cpu_s_with_auth": round(with_auth, 1),
            "handshakes_per_cpu_s_without_auth": round(without, 1),
            "handshakes_per_s_with_auth_vs_without": round(
                with_auth / without, 3)}


async def storm_figures(keys: KeyedStore, fixture_ids: Sequence[str],
                        per_second: int, realtime: bool = True
                        ) -> dict[str, float]:
    """p99 result latency of streams alone, then during a storm of
    handshakes from another key; the share of the storm refused."""
    args, env = secured_service(keys)
    victim, storming = keys.create_key("acme"), keys.create_key("mallory")
    fixtures = [load_manifest().get(i) for i in fixture_ids]
    paths = [fixture.file() for fixture in fixtures]
    # while the shortest stream lasts, at the pace of speech
    seconds = max(1, int(min(f.duration_s for f in fixtures)))
    storm_statuses: Counter[int] = Counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(pool, int)  # started: storms at once
        async with running_service(args, env) as service:
            await wait_until_ready(service.port)
            url = f"ws://127.0.0.1:{service.port}"
            calm = await result_latencies_ms(url, victim, paths, realtime)

            async def storm() -> None:
                storm_statuses.update(await loop.run_in_executor(
                    pool, partial(storm_in_process, url + LISTEN,
                                  {"Authorization": f"Token {storming}"},
                                  per_second, seconds)))

            stormy = await result_latencies_ms(url, victim, paths,
                                               realtime, during=storm)
    refused = sum(n for status, n in storm_statuses.items()
                  if status != 101)
    return {"result_p99_ms_without_storm": p99(calm),
            "result_p99_ms_during_storm": p99(stormy),
            "storm_refused_share": round(
                refused / max(1, storm_statuses.total()), 3)}


def p99(values: list[float]) -> float:
    return round(float(np.percentile(values, 99)), 2)


async def service_figures(handshake_count: int, fixtures: Sequence[str],
                          per_second: int, realtime: bool = True
                          ) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        keys = KeyedStore(f"sqlite:///{directory}/keys.sqlite3",
                          secrets.token_hex(32))
        return {**await handshake_figures(keys, handshake_count),
                **await storm_figures(keys, fixtures, per_second,
                                      realtime)}


def run() -> dict[str, float]:
    return {**redaction_figures(utterances(), ROUNDS),
            "aes_gcm_mb_per_s": round(aes_gcm_mb_per_s(), 1),
            **credential_figures(CREDENTIAL_ROUNDS),
            **asyncio.run(service_figures(HANDSHAKES, SPEECH,
                                          STORM_PER_SECOND))}
