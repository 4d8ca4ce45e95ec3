"""Chapter 8 benchmark: ledger ingest rate, and what pre-aggregation saves.

Ingest: batches of 100 CloudEvents (one in ten a retry of an event
already accepted), parsed and validated as the API does, then written
with the idempotent insert, on SQLite (WAL, synchronous=FULL) and on
PostgreSQL (`TEST_DATABASE_URL`, default the local server).

Metering: the load generator's workload (streams of 100 ms chunks at
the pace of speech, from several customers) against `python -m
ch08_metering serve`, once with real-time metering (one usage event per
chunk) and once with an event per 60 s. The per-chunk events are then
rolled up as the delivery worker does (per customer, meter and minute):
Stripe calls with pre-aggregation against one call per usage event.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.ch04_streaming import workload
from bench.loadgen import run_load
from ch04_streaming.app import event_loop_factory
from ch08_metering.accounts import key_digest, load_accounts
from ch08_metering.database import open_engine
from ch08_metering.events import UsageEvent, parse_event
from ch08_metering.ledger import Ledger
from ch08_metering.rollup import roll_up
from examples.service import running_service

BATCH = 100
BATCHES = 400
POSTGRES = os.environ.get("TEST_DATABASE_URL",
                          "postgresql://postgres@127.0.0.1:5432/test")
CUSTOMERS = 10
STREAMS_PER_CUSTOMER = 10
MEASURE_S = 30.0


def raw_batches(now: datetime) -> list[list[object]]:
    """Batches of raw events; each repeats ten of the previous batch."""
    batches: list[list[object]] = []
    previous: list[object] = []
    for b in range(BATCHES):
        fresh: list[object] = [{
            "specversion": "1.0", "id": f"s{b}-{n}", "source": "bench",
            "type": "com.speechapi.usage.v1", "subject": "acme",
            "time": now.isoformat(),
            "data": {"meter": "audio_ms", "value": 100,
                     "features": ["diarization"], "stream_id": f"s{b}"},
        } for n in range(BATCH - 10 if previous else BATCH)]
        batches.append(previous[:10] + fresh)
        previous = fresh
    return batches


def ingest_rate(url: str) -> float:
    """Events per second through validation and idempotent insert."""
    now = datetime.now(UTC)
    customers = load_accounts().customers
    batches = raw_batches(now)
    engine = open_engine(url)
    ledger = Ledger(engine)
    ledger.create()
    started = time.perf_counter()
    for raw in batches:
        parsed = [parse_event(event, customers, now) for event in raw]
        events = [e for e in parsed if isinstance(e, UsageEvent)]
        ledger.ingest(events, round(now.timestamp() * 1000))
    elapsed = time.perf_counter() - started
    engine.dispose()
    return sum(len(b) for b in batches) / elapsed


@contextmanager
def postgres_schema() -> Iterator[str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def accounts_file(folder: Path) -> Path:
    """Ten customers on the enterprise tier, keys `bench-key-N`."""
    lines = ["[tiers.enterprise]", "max_concurrent_streams = 500",
             "audio_seconds_per_minute = 60_000"]
    for n in range(CUSTOMERS):
        lines += [f"[customers.bench{n}]", 'tier = "enterprise"',
                  f'stripe_customer_id = "cus_bench{n}"',
                  f'key_sha256 = ["{key_digest(f"bench-key-{n}")}"]']
    path = folder / "accounts.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def metered_run(folder: Path, interval_s: float) -> tuple[int, float]:
    """Usage events the ledger holds after the workload, and its time."""
    database = folder / f"ledger-{interval_s:g}.sqlite3"
    keys = ",".join(f"bench-key-{n}" for n in range(CUSTOMERS))
    command = ("-m", "ch08_metering", "serve", "--port", "0",
               "--stream-port", "0",
               "--accounts", str(accounts_file(folder)),
               "--interval-s", str(interval_s))
    env = {"SPEECH_API_KEYS": keys, "DATABASE_URL": f"sqlite:///{database}",
           "CH04_PROFILE": "zero", "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}
    load = workload()
    async with running_service(command, env) as service:
        url = (f"{service.streaming_url}/v1/listen"
               "?encoding=linear16&sample_rate=16000")
        started = time.monotonic()
        await asyncio.gather(*(
            run_load(url, {"Authorization": f"Token bench-key-{n}"},
                     load.chunks, load.speech, STREAMS_PER_CUSTOMER,
                     echo=False, warmup_s=0.0, measure_s=MEASURE_S)
            for n in range(CUSTOMERS)))
        elapsed = time.monotonic() - started
        service.process.send_signal(signal.SIGTERM)
        await service.process.wait()
    ledger = Ledger(open_engine(f"sqlite:///{database}"))
    events = ledger.event_count()
    ledger.engine.dispose()
    return events, elapsed


async def metering_figures(folder: Path) -> dict[str, float]:
    per_chunk, seconds = await metered_run(folder, interval_s=0.0)
    per_minute, _ = await metered_run(folder, interval_s=60.0)
    database = folder / "ledger-0.sqlite3"
    engine = open_engine(f"sqlite:///{database}")
    accounts = load_accounts(folder / "accounts.toml")
    counts = roll_up(engine, accounts, now_ms=2**62, settle_s=0.0)
    engine.dispose()
    calls = counts.outbox_rows
    return {
        "workload_streams": CUSTOMERS * STREAMS_PER_CUSTOMER,
        "workload_customers": CUSTOMERS,
        "workload_seconds": round(seconds, 1),
        "realtime_events_per_s": round(per_chunk / seconds, 1),
        "realtime_stripe_calls_per_s": round(per_chunk / seconds, 1),
        "interval_60s_events": per_minute,
        "preaggregated_stripe_calls": calls,
        "preaggregated_stripe_calls_per_s": round(calls / seconds, 3),
        "stripe_call_reduction_factor": round(per_chunk / calls, 1),
    }


def run() -> dict[str, float]:
    figures = {"ingest_events_per_s_sqlite": 0.0,
               "ingest_events_per_s_postgres": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        figures["ingest_events_per_s_sqlite"] = round(ingest_rate(
            f"sqlite:///{folder}/ingest.sqlite3"))
        with postgres_schema() as url:
            figures["ingest_events_per_s_postgres"] = round(
                ingest_rate(url))
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            figures |= runner.run(metering_figures(Path(folder)))
    return figures
