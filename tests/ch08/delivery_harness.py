"""What the ledger and delivery tests share: a fake clock, accounts, a
worker, ledgers, and another writer holding SQLite's write lock.

The worker under test, the Stripe-compatible server and the ledger
share one `FakeClock`, so "now" is the same for all three and time moves
only when a test (or a backoff sleep) moves it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from random import Random

from sqlalchemy import Engine, func, select

from ch08_metering.accounts import Accounts, parse_accounts
from ch08_metering.database import open_engine
from ch08_metering.delivery import (
    DeliveryPolicy,
    DeliveryWorker,
    Throttle,
)
from ch08_metering.events import UsageEvent, usage_event
from ch08_metering.ledger import Ledger
from ch08_metering.rollup import stripe_event_names
from ch08_metering.schema import (
    stripe_outbox,
    usage_events,
)
from ch08_metering.stripe_sink import (
    MeterSink,
    StripeSettings,
    StripeSink,
)
from tests.ch08.stripe_server import (
    StripeState,
)

KEY = "sk_test_delivery"
NOON_UTC = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # the tests' "now"
NOON = NOON_UTC.timestamp()


def accounts_of(*customers: str) -> Accounts:
    """Customers `name` billed to Stripe customers `cus_name`."""
    return parse_accounts({
        "tiers": {"growth": {"max_concurrent_streams": 20,
                             "audio_seconds_per_minute": 1_800}},
        "customers": {c: {"tier": "growth", "stripe_customer_id": f"cus_{c}"}
                      for c in customers}})


ACCOUNTS = accounts_of("acme", "beta", "ghost")
SETTLED = DeliveryPolicy(settle_s=0.0)  # tests use minutes already past


@dataclass
class FakeClock:
    """Wall and monotonic clock in one; sleeping moves it, instantly."""

    now: float = NOON
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def settings(url: str, *, retries: int = 1,
             timeout_s: float = 5.0) -> StripeSettings:
    return StripeSettings(KEY, url, url, max_network_retries=retries,
                          timeout_s=timeout_s)


Pace = Callable[[], object]


def v1_sink(url: str, *, retries: int = 1,
            timeout_s: float = 5.0) -> Callable[[Pace], MeterSink]:
    """A v1 sink, once the worker's throttle gives it its pace."""
    return lambda pace: StripeSink(
        settings(url, retries=retries, timeout_s=timeout_s), pace)


def worker_for(engine: Engine, sink: Callable[[Pace], MeterSink],
               clock: FakeClock | Callable[[], float],
               policy: DeliveryPolicy = SETTLED,
               accounts: Accounts = ACCOUNTS, *,
               monotonic: Callable[[], float] | None = None,
               sleep: Callable[[float], object] | None = None,
               stop: threading.Event | None = None,
               seed: int = 7) -> DeliveryWorker:
    """A worker whose throttle paces `sink`. On a `FakeClock` the
    throttle reads and sleeps on it; another `clock` (wall time) needs
    `monotonic` and `sleep`. Setting `stop` ends the worker's pass."""
    if isinstance(clock, FakeClock):
        monotonic, sleep = monotonic or clock, sleep or clock.sleep
    if monotonic is None or sleep is None:
        raise TypeError("a clock other than FakeClock needs monotonic"
                        " and sleep")
    throttle = Throttle(policy.max_calls_per_s, monotonic, sleep)
    return DeliveryWorker(engine, accounts, sink(throttle.wait), clock,
                          throttle, Random(seed), policy,
                          stop or threading.Event())


def some_usage(before: float, customers: tuple[str, ...] = ("acme", "beta"),
               minutes: int = 3, tag: str = "u") -> list[UsageEvent]:
    """Audio with and without features, and characters, for each
    customer, in each of the `minutes` whole minutes before `before`."""
    events = []
    for m in range(minutes):
        at = before - before % 60 - 60 * (m + 1)
        for n, customer in enumerate(customers):
            stream = f"{tag}-{customer}-{m}"
            events += [
                usage_event(stream_id=stream, sequence=1, customer=customer,
                            source="test", meter="audio_ms",
                            value=1_000 * (n + 1) + m, features=(),
                            at=at + 1),
                usage_event(stream_id=stream, sequence=2, customer=customer,
                            source="test", meter="audio_ms", value=250,
                            features=("diarization",), at=at + 59.5),
                usage_event(stream_id=stream, sequence=3, customer=customer,
                            source="test", meter="characters", value=42 + m,
                            features=(), at=at + 30),
            ]
    return events


def expected_totals(ledger: Ledger, accounts: Accounts = ACCOUNTS
                    ) -> dict[tuple[str, str], int]:
    """What Stripe must hold: the ledger, per Stripe customer and meter."""
    sums: dict[tuple[str, str], int] = {}
    for (customer, meter, features), value in ledger.totals().items():
        stripe_id = accounts.customers[customer].stripe_customer_id
        for name in stripe_event_names(meter, features):
            sums[(stripe_id, name)] = sums.get((stripe_id, name), 0) + value
    return sums


def undelivered(engine: Engine) -> int:
    o = stripe_outbox.c
    with engine.connect() as connection:
        return int(connection.scalar(
            select(func.count()).select_from(stripe_outbox)
            .where(o.delivered_at_ms.is_(None))) or 0)


def uncounted(engine: Engine) -> int:
    """Usage events no roll-up has counted yet."""
    with engine.connect() as connection:
        return int(connection.scalar(
            select(func.count()).select_from(usage_events)
            .where(usage_events.c.rollup_id.is_(None))) or 0)


def outbox_size(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(
            select(func.count()).select_from(stripe_outbox)) or 0)


def calls(state: StripeState, path: str) -> list[int]:
    """The status of each request to `path`, in order."""
    return [r.status for r in state.requests if r.path == path]


class Ledgers:
    """Empty ledgers made for one test; `close` disposes of their
    connections (the `ledgers` fixture does, afterwards)."""

    def __init__(self) -> None:
        self.engines: list[Engine] = []

    def at(self, url: str, *, busy_timeout_s: float = 5.0) -> Ledger:
        engine = open_engine(url, busy_timeout_s=busy_timeout_s)
        self.engines.append(engine)
        ledger = Ledger(engine)
        ledger.create()
        return ledger

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another writer holds the SQLite database's write lock meanwhile."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()
