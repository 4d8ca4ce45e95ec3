"""Chapter 8 benchmark: ledger ingest rate, and what pre-aggregation saves.

Ingest: batches of 100 CloudEvents (one in ten a retry of an event
already accepted), parsed and validated as the API does, then written
with the idempotent insert, on SQLite (WAL, synchronous=FULL) and on
PostgreSQL (`TEST_DATABASE_URL`, default the local server).

Metering: the load generator's workload (streams of 100 ms chunks at
the pace of speech, from several customers) against `python -m
ch08_metering serve`, once with real-time metering (one usage event per
chunk) and once with an event per 60 s. The per-chunk events then go
to a dry-run Stripe sink twice, and its calls are counted: once as a
per-event integration would send them (one meter event per usage event
and Stripe meter), once through the delivery worker, which rolls them up
per customer, meter and minute. For the roll-up the run is moved to
start on a minute: it lasts under one, so each customer and meter is
one call, wherever the clock stood when it ran.
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
from random import Random

import psycopg
from sqlalchemy import Engine, func, select, update

from bench.ch04_streaming import workload
from bench.loadgen import run_load
from ch04_streaming.app import event_loop_factory
from ch08_metering.accounts import Accounts, key_digest, load_accounts
from ch08_metering.database import open_engine
from ch08_metering.delivery import DeliveryPolicy, DeliveryWorker, Throttle
from ch08_metering.events import UsageEvent, parse_event
from ch08_metering.ledger import Ledger, split
from ch08_metering.rollup import MINUTE_MS, stripe_event_names
from ch08_metering.schema import usage_events
from ch08_metering.stripe_sink import DryRunSink, MeterEvent
from examples.service import running_service, wait_until_ready

BATCH = 100
BATCHES = 400
POSTGRES = os.environ.get("TEST_DATABASE_URL",
                          "postgresql://postgres@127.0.0.1:5432/test")
CUSTOMERS = 10
STREAMS_PER_CUSTOMER = 10
MEASURE_S = 30.0  # under a minute: see start_on_a_minute
METER_EVENT_CALL = "POST /v1/billing/meter_events"


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
               "--stream-port", "0", "--grpc-port", "0",
               "--accounts", str(accounts_file(folder)),
               "--interval-s", str(interval_s))
    env = {"SPEECH_API_KEYS": keys, "DATABASE_URL": f"sqlite:///{database}",
           "CH04_PROFILE": "zero", "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}
    load = workload()
    async with running_service(command, env) as service:
        await wait_until_ready(service.streaming_port)  # 503 until then
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


def meter_event_calls(sink: DryRunSink) -> int:
    """Meter events the sink was called with (meter creation aside)."""
    return sum(1 for r in sink.records if r["call"] == METER_EVENT_CALL)


def realtime_calls(engine: Engine, accounts: Accounts) -> int:
    """Calls made sending each usage event as it comes: one meter event
    per event and Stripe meter (a feature is a meter of its own)."""
    t = usage_events.c
    with engine.connect() as connection:
        events = connection.execute(
            select(t.source, t.id, t.customer, t.meter, t.features,
                   t.value, t.event_time_ms)
            .order_by(t.event_time_ms)).all()
    sink = DryRunSink()
    for e in events:
        customer = accounts.customers[e.customer].stripe_customer_id
        for name in stripe_event_names(e.meter, split(e.features)):
            sink.send([MeterEvent(f"{e.source}:{e.id}:{name}", name,
                                  customer, e.value,
                                  e.event_time_ms // 1000)])
    return meter_event_calls(sink)


def start_on_a_minute(engine: Engine) -> int:
    """Move every event so the first falls on a minute's start, as if
    the run had begun there; return when the last one's minute ends
    (ms), the earliest time all of them are settled."""
    t = usage_events.c
    with engine.begin() as connection:
        first: int = connection.scalar(select(func.min(t.event_time_ms)))
        connection.execute(update(usage_events).values(
            event_time_ms=t.event_time_ms - first % MINUTE_MS))
        last: int = connection.scalar(select(func.max(t.event_time_ms)))
    return last - last % MINUTE_MS + MINUTE_MS


def preaggregated_calls(engine: Engine, accounts: Accounts,
                        now_s: float) -> int:
    """Calls the delivery worker makes for the ledger, at `now_s`."""
    sink = DryRunSink()
    worker = DeliveryWorker(
        engine, accounts, sink, clock=lambda: now_s,
        # A dry run calls no one, so the throttle never makes it wait.
        throttle=Throttle(1.0, time.monotonic, time.sleep),
        random=Random(0), policy=DeliveryPolicy(settle_s=0.0))
    worker.run_once()
    return meter_event_calls(sink)


async def metering_figures(folder: Path) -> dict[str, float]:
    per_chunk, seconds = await metered_run(folder, interval_s=0.0)
    per_minute, _ = await metered_run(folder, interval_s=60.0)
    database = folder / "ledger-0.sqlite3"
    engine = open_engine(f"sqlite:///{database}")
    accounts = load_accounts(folder / "accounts.toml")
    realtime = realtime_calls(engine, accounts)
    settled_ms = start_on_a_minute(engine)
    calls = preaggregated_calls(engine, accounts, settled_ms / 1000)
    engine.dispose()
    return {
        "workload_streams": CUSTOMERS * STREAMS_PER_CUSTOMER,
        "workload_customers": CUSTOMERS,
        "workload_seconds": round(seconds, 1),
        "realtime_events_per_s": round(per_chunk / seconds, 1),
        "realtime_stripe_calls": realtime,
        "realtime_stripe_calls_per_s": round(realtime / seconds, 1),
        "interval_60s_events": per_minute,
        "preaggregated_stripe_calls": calls,
        "preaggregated_stripe_calls_per_s": round(calls / seconds, 3),
        "stripe_call_reduction_factor": round(realtime / calls, 1),
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
