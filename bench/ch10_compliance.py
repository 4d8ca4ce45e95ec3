"""Benchmark of chapter 10: what the audit log and erasure cost.

Appends: `AUDIT_EVENTS` stream-end events (the commonest entry) written
to an audit log in a SQLite file with durable commits (`synchronous=
FULL`), `BATCH` per transaction as the service's writer batches them:
`audit_appends_per_s` (target 10,000 at least).

Verification: a log of `VERIFY_ENTRIES` entries (one million), with a
signed checkpoint every `CHECKPOINT_EVERY`, checked in full as `audit
verify` does (every leaf, every node, every checkpoint):
`audit_verify_1m_entries_s` (target 30 s at most).

Proofs: `PROOFS` inclusion proofs of random entries of that log, each
read from the database as `audit prove` does: `inclusion_proof_us`,
the p99 (target 1 ms at most), and `inclusion_proof_p50_us`.

Erasure: one subject with `ERASED_OBJECTS` sealed objects (half audio,
half transcripts) in a regional store on SQLite, erased: every key of
the subject destroyed, every row deleted and journalled:
`erasure_10k_objects_s`.

The 300 ms rule, governed: the `SPEECH` fixtures streamed side by side
at the pace of speech through `python -m ch10_compliance serve`, each
naming its speaker (who consented) and asking to be kept, so every
check and audit entry of the chapter is on the path; and through
`python -m ch09_security serve` with the same key, for comparison.
`governed_interim_p95_ms` is the p95 latency of the interim results (the
words a listener sees while speaking: the 300 ms rule's measure),
`governed_result_p99_ms` and `ch09_result_p99_ms` the p99 of every
result, finals included (which wait out 300 ms of endpointing silence
by design).
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.ch09_security import QUICK_START, SPEECH
from ch04_streaming.client import DIALECTS, Report, load_audio, stream
from ch07_api import database
from ch09_security.key_ring import KeyRing
from ch09_security.key_store import KeyHasher, KeyStore
from ch09_security.keys_cli import now_ms
from ch09_security.master_key import MASTER_KEY_VARIABLE
from ch10_compliance.audit import AuditLog
from ch10_compliance.audit_event import Action, AuditEvent
from ch10_compliance.audit_verify import verify
from ch10_compliance.consent import ConsentLedger, Purpose
from ch10_compliance.data_classes import DataClass
from ch10_compliance.regional_store import Governed, RegionalStore
from ch10_compliance.signer import Signer, new_seed, signer_from_seed
from examples.fixtures import load_manifest
from examples.service import running_service, wait_until_ready
from examples.stream_file import WithQuery

AUDIT_EVENTS = 200_000
BATCH = 1_000
VERIFY_ENTRIES = 1_000_000
CHECKPOINT_EVERY = 10_000
PROOFS = 2_000
ERASED_OBJECTS = 10_000
DAY_MS = 86_400_000
OWNER = "acme-eu"  # residency.toml: EU only


def stream_ended(n: int) -> AuditEvent:
    return AuditEvent(Action.STREAM_ENDED, "key_3f9a1c2b7d4e6f80",
                      owner="acme", target=f"{n:032x}", details={
                          "region": "eu", "subject": "", "retain": False,
                          "audio_ms": 4_200 + n % 1_000})


def open_log(directory: Path) -> AuditLog:
    log = AuditLog(database.open_engine(
        f"sqlite:///{directory}/audit.sqlite3"))
    log.create_schema()
    return log


def fill(log: AuditLog, entries: int, signer: Signer | None = None,
         every: int = CHECKPOINT_EVERY) -> float:
    """Append `entries` in batches; the seconds it took."""
    started = time.perf_counter()
    for first in range(0, entries, BATCH):
        log.append([stream_ended(n) for n in range(
            first, min(entries, first + BATCH))])
        if signer is not None and (first + BATCH) % every == 0:
            log.checkpoint(signer, "bench.localhost/audit")
    if signer is not None:
        log.checkpoint(signer, "bench.localhost/audit")
    return time.perf_counter() - started


def appends_per_s(entries: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        log = open_log(Path(directory))
        seconds = fill(log, entries)
        log.engine.dispose()
    return entries / seconds


def verify_and_prove(entries: int, proofs: int
                     ) -> tuple[float, list[float]]:
    """Seconds to verify a log of `entries`; microseconds per proof."""
    signer = signer_from_seed(new_seed(), "bench")
    with tempfile.TemporaryDirectory() as directory:
        log = open_log(Path(directory))
        fill(log, entries, signer)
        started = time.perf_counter()
        report = verify(log, signer.public_key)
        verify_s = time.perf_counter() - started
        if not report.ok or report.size != entries:
            raise RuntimeError(f"the log did not verify: {report}")
        chosen = random.Random(10).sample(range(entries), proofs)
        timings = []
        for seq in chosen:
            started = time.perf_counter()
            log.prove(seq)
            timings.append((time.perf_counter() - started) * 1e6)
        log.engine.dispose()
    return verify_s, timings


def erasure_s(objects: int, now_ms: Callable[[], int]) -> float:
    """Seconds to erase one subject holding `objects` objects."""
    with tempfile.TemporaryDirectory() as directory:
        engine = database.open_engine(f"sqlite:///{directory}/eu.sqlite3")
        store = RegionalStore("eu", engine, KeyRing(bytes(32), now_ms),
                              now_ms)
        store.create_schema()
        expires = now_ms() + 30 * DAY_MS
        for first in range(0, objects, 500):
            store.put(*(Governed(
                "acme", "alice", "eu",
                DataClass.AUDIO if n % 2 else DataClass.TRANSCRIPT,
                f"st_{n // 2}", bytes(1_024), expires)
                for n in range(first, min(objects, first + 500))))
        started = time.perf_counter()
        erased = store.erase_subject("acme", "alice")
        seconds = time.perf_counter() - started
        engine.dispose()
    if erased.objects_deleted != objects:
        raise RuntimeError(f"erased {erased.objects_deleted} of {objects}")
    return seconds


def governed_environment(directory: Path, subjects: int
                         ) -> tuple[dict[str, str], str]:
    """A control database with a key of `OWNER` and its speakers'
    consents, two regional stores; the environment, and the key."""
    secret = secrets.token_hex(32)
    env = {"DATABASE_URL": f"sqlite:///{directory}/control.sqlite3",
           "KEY_HASH_SECRET": secret,
           MASTER_KEY_VARIABLE: base64.b64encode(os.urandom(32)).decode(),
           "AUDIT_SIGNING_KEY": new_seed(),
           "REGION_STORES": f"eu=sqlite:///{directory}/eu.sqlite3 "
                            f"us=sqlite:///{directory}/us.sqlite3",
           "SPEECH_API_KEYS": "", **QUICK_START}
    engine = database.open_engine(env["DATABASE_URL"])
    store = KeyStore(engine, KeyHasher(secret.encode()), now_ms)
    store.create_schema()
    key = store.create(OWNER).key
    consent = ConsentLedger(engine, now_ms)
    consent.create_schema()
    for n in range(subjects):
        for purpose in (Purpose.TRANSCRIPTION, Purpose.RETENTION):
            consent.grant(OWNER, f"speaker-{n}", purpose)
    engine.dispose()
    return env, key


async def streamed(module: str, env: dict[str, str], key: str,
                   fixture_ids: Sequence[str], realtime: bool,
                   governed: bool) -> list[Report]:
    """The fixtures side by side through `python -m module serve`."""
    paths = [load_manifest().get(i).file() for i in fixture_ids]
    async with running_service(("-m", module, "serve", "--port", "0",
                                "--api-port", "0"), env) as service:
        await wait_until_ready(service.port)
        url = f"ws://127.0.0.1:{service.port}"
        return list(await asyncio.gather(*(stream(
            url, WithQuery(DIALECTS["deepgram"], {
                "subject": f"speaker-{n}", "retain": "true"}
                if governed else {}), key, load_audio(path),
            realtime=realtime) for n, path in enumerate(paths))))


def latencies_ms(reports: Sequence[Report], finals: bool | None
                 ) -> list[float]:
    return [r.latency_s * 1000 for report in reports
            for r in report.results
            if r.text and (finals is None or r.is_final == finals)]


def latency_figures(fixture_ids: Sequence[str] = SPEECH,
                    realtime: bool = True) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        env, key = governed_environment(Path(directory), len(fixture_ids))
        governed = asyncio.run(streamed("ch10_compliance", env, key,
                                        fixture_ids, realtime, True))
        plain = asyncio.run(streamed("ch09_security", env, key,
                                     fixture_ids, realtime, False))
    return {
        "governed_interim_p95_ms": round(float(np.percentile(
            latencies_ms(governed, False), 95)), 1),
        "governed_result_p99_ms": round(float(np.percentile(
            latencies_ms(governed, None), 99)), 1),
        "ch09_result_p99_ms": round(float(np.percentile(
            latencies_ms(plain, None), 99)), 1),
    }


def figures(events: int = AUDIT_EVENTS, entries: int = VERIFY_ENTRIES,
            proofs: int = PROOFS, objects: int = ERASED_OBJECTS
            ) -> dict[str, float]:
    verify_s, timings = verify_and_prove(entries, proofs)
    return {
        "audit_appends_per_s": round(appends_per_s(events)),
        "audit_verify_1m_entries_s": round(verify_s, 2),
        "audit_verified_entries": entries,
        "inclusion_proof_us": round(float(np.percentile(timings, 99)), 1),
        "inclusion_proof_p50_us": round(float(np.percentile(timings, 50)),
                                        1),
        "erasure_10k_objects_s": round(erasure_s(
            objects, lambda: round(time.time() * 1000)), 3),
    }


def run() -> dict[str, float]:
    return {**figures(), **latency_figures()}
