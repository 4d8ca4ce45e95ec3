"""Delivery under faults: 429, 500, timeouts, refusals, locks, kill -9.

Whatever fails, Stripe ends up holding exactly the ledger's totals:
every value once. Waits poll a condition with a deadline.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from random import Random

import pytest
from sqlalchemy import event, select

from ch08_metering.database import open_engine
from ch08_metering.delivery import DeliveryPolicy, DeliveryWorker, PassCounts
from ch08_metering.ledger import Ledger
from ch08_metering.schema import (
    stripe_dead_letters,
    stripe_outbox,
)
from ch08_metering.stripe_sink import (
    MeterEvent,
    SendOutcome,
    StripeSettings,
    StripeSink,
    StripeUnavailableError,
)
from tests.ch08.delivery_harness import (
    ACCOUNTS,
    KEY,
    NOON,
    FakeClock,
    Ledgers,
    accounts_of,
    calls,
    expected_totals,
    outbox_size,
    settings,
    some_usage,
    uncounted,
    undelivered,
    v1_sink,
    worker_for,
    write_lock,
)
from tests.ch08.stripe_server import (
    EVENTS_PATH,
    RunningStripeServer,
    StripeState,
    running_stripe_server,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ledger(tmp_path: Path, ledgers: Ledgers) -> Ledger:
    """SQLite, with a short busy timeout: a held lock fails fast."""
    return ledgers.at(f"sqlite:///{tmp_path}/ledger.sqlite3",
                      busy_timeout_s=0.2)


def eventually(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.02)
    return True


def identifiers_once(state: StripeState) -> bool:
    identifiers = [e.identifier for e in state.events]
    return len(identifiers) == len(set(identifiers))


def test_429s_pause_every_call_then_back_off_and_deliver_exactly(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    ledger.ingest(some_usage(NOON, minutes=1), now_ms=int(NOON * 1000))
    server.state.inject("429", count=3)
    worker = worker_for(ledger.engine, v1_sink(server.url), clock)
    first = worker.run_once()
    assert (first.retried, first.delivered) == (3, 3)
    assert worker.throttle.per_s < worker.policy.max_calls_per_s
    pace = 1 / worker.policy.max_calls_per_s
    assert any(s > 2 * pace for s in clock.sleeps)  # paused after a 429
    clock.now += 2  # past the first backoff (at most 1 s)
    assert worker.run_once().delivered == 3
    worker.sink.close()
    assert calls(server.state, EVENTS_PATH).count(429) == 3
    assert server.state.totals() == expected_totals(ledger)


def deliver_everything(worker: DeliveryWorker, timeout_s: float) -> bool:
    """Pass after pass until the outbox is empty, within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while undelivered(worker.engine) or uncounted(worker.engine):
        if time.monotonic() > deadline:
            return False
        worker.run_once()
    return True


def test_a_flush_of_many_customers_is_paced_under_stripes_limit(
        tmp_path: Path, ledgers: Ledgers) -> None:
    """Twelve customers' minutes at once: paced at 10 calls/s against a
    limit of 20/s, not one 429; unpaced, 429s slow it down and nothing
    is lost either."""
    customers = tuple(f"c{n}" for n in range(12))
    accounts = accounts_of(*customers)
    now = time.time()
    state = StripeState(api_key=KEY, rate_limit=20, burst=2)
    with running_stripe_server(state) as server:
        for run, max_calls_per_s in enumerate((10.0, 1_000.0), start=1):
            ledger = ledgers.at(f"sqlite:///{tmp_path}/{run}.sqlite3")
            ledger.ingest(some_usage(now, customers, minutes=1,
                                     tag=f"run{run}"),
                          now_ms=int(now * 1000))
            policy = DeliveryPolicy(settle_s=0, base_backoff_s=0.05,
                                    max_calls_per_s=max_calls_per_s)
            worker = worker_for(ledger.engine, v1_sink(server.url),
                                time.time, policy, accounts,
                                monotonic=time.monotonic, sleep=time.sleep,
                                seed=3)
            assert deliver_everything(worker, timeout_s=40)
            worker.sink.close()
            statuses = calls(state, EVENTS_PATH)
            assert state.totals() == {
                key: run * value
                for key, value in expected_totals(ledger, accounts).items()}
            if run == 1:
                assert statuses == [200] * 36
            else:
                assert statuses.count(429) > 0


def test_500s_are_retried_until_each_event_is_recorded_once(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    ledger.ingest(some_usage(NOON, minutes=1), now_ms=int(NOON * 1000))
    server.state.inject("500", count=3)  # the SDK retries once itself
    worker = worker_for(ledger.engine, v1_sink(server.url, retries=1),
                        clock)
    first = worker.run_once()
    assert (first.retried, first.delivered) == (1, 5)
    clock.now += 2
    assert worker.run_once().delivered == 1
    worker.sink.close()
    assert calls(server.state, EVENTS_PATH).count(500) == 3
    assert server.state.totals() == expected_totals(ledger)


@pytest.mark.parametrize(("recorded", "sdk_retries"), [
    (True, 0),  # committed, the answer lost: the worker resends
    (False, 0),  # never committed: the worker resends
    (True, 1),  # committed: the SDK resends, same idempotency key
])
def test_a_timeout_ends_in_exactly_one_recorded_event(
        ledger: Ledger, clock: FakeClock, server: RunningStripeServer,
        recorded: bool, sdk_retries: int) -> None:
    ledger.ingest(some_usage(NOON, ("acme",), minutes=1),
                  now_ms=int(NOON * 1000))
    server.state.inject("timeout", record=recorded, hold_s=5)
    worker = worker_for(ledger.engine, v1_sink(
        server.url, retries=sdk_retries, timeout_s=1.0), clock)
    first = worker.run_once()
    assert len(server.state.events) == 3 - (not recorded)
    clock.now += 2
    second = worker.run_once()
    worker.sink.close()
    assert first.delivered + second.delivered == 3
    assert first.retried == (1 if sdk_retries == 0 else 0)
    assert identifiers_once(server.state)
    assert server.state.totals() == expected_totals(ledger)


def test_a_refused_event_is_dead_lettered_and_the_rest_still_go(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    ledger.ingest(some_usage(NOON, ("acme", "ghost", "beta"), minutes=1),
                  now_ms=int(NOON * 1000))
    worker = worker_for(ledger.engine, v1_sink(server.url), clock)
    counts = worker.run_once()
    worker.sink.close()
    with ledger.engine.connect() as connection:
        dead = connection.execute(select(stripe_dead_letters)).all()
    assert (counts.dead_lettered, counts.delivered) == (3, 6)
    assert {d.customer for d in dead} == {"ghost"}
    assert all(d.reason == "400: No such customer: 'cus_ghost'"
               for d in dead)
    assert undelivered(ledger.engine) == 0
    assert ("cus_acme", "speech_audio_ms") in server.state.totals()


def test_a_row_that_keeps_failing_is_dead_lettered_at_the_cap(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    ledger.ingest(some_usage(NOON, ("acme",), minutes=1),
                  now_ms=int(NOON * 1000))
    server.state.fail_for(3_600, "500")
    policy = DeliveryPolicy(settle_s=0, max_attempts=3)
    worker = worker_for(ledger.engine, v1_sink(server.url, retries=0),
                        clock, policy)
    passes = [worker.run_once()]
    while passes[-1].dead_lettered == 0 and len(passes) < 5:
        clock.now += 10
        passes.append(worker.run_once())
    worker.sink.close()
    with ledger.engine.connect() as connection:
        reasons = set(connection.scalars(
            select(stripe_dead_letters.c.reason)))
    assert [p.retried for p in passes] == [3, 3, 0]
    assert reasons == {"gave up after 3 attempts; last error: 500: An "
                       "unknown error occurred on Stripe's end."}
    assert outbox_size(ledger.engine) == 0


def test_a_bad_key_stops_the_pass_and_costs_no_attempt(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    ledger.ingest(some_usage(NOON, ("acme",), minutes=1),
                  now_ms=int(NOON * 1000))
    revoked = StripeSettings("sk_test_revoked", server.url, server.url)
    bad = worker_for(ledger.engine,
                     lambda pace: StripeSink(revoked, pace), clock)
    assert bad.run_once().delivered == 0  # cannot even list the meters
    assert undelivered(ledger.engine) == 3
    good = worker_for(ledger.engine, v1_sink(server.url), clock)
    assert good.run_once().delivered == 3  # the meters are known now
    ledger.ingest(some_usage(NOON + 60, ("acme",), minutes=1, tag="b"),
                  now_ms=int(NOON * 1000))
    clock.now += 60
    with pytest.raises(StripeUnavailableError, match="Invalid API Key"):
        bad.run_once()
    bad.sink.close()
    assert undelivered(ledger.engine) == 3
    with ledger.engine.connect() as connection:
        assert set(connection.scalars(select(stripe_outbox.c.attempts))) == {
            1, 0}  # the delivered rows, and the rows that waited
    assert good.run_once().delivered == 3
    good.sink.close()
    assert server.state.totals() == expected_totals(ledger)


class LockAfterFirstSend:
    """A sink that, once Stripe accepted the first event, has another
    connection take the SQLite write lock for `hold_s`: the worker
    cannot record the delivery it just made."""

    def __init__(self, inner: StripeSink, path: Path, hold_s: float):
        self.inner, self.path, self.hold_s = inner, path, hold_s
        self.max_batch = inner.max_batch
        self.released = threading.Event()
        self.holder: threading.Thread | None = None

    def ensure_meters(self, event_names: Sequence[str]) -> dict[str, str]:
        return self.inner.ensure_meters(event_names)

    def send(self, events: Sequence[MeterEvent]) -> SendOutcome:
        outcome = self.inner.send(events)
        if self.holder is None:
            locked = threading.Event()
            self.holder = threading.Thread(target=self.hold, args=(locked,))
            self.holder.start()
            assert locked.wait(timeout=5)
        return outcome

    def hold(self, locked: threading.Event) -> None:
        with write_lock(self.path):
            locked.set()
            self.released.wait(self.hold_s)

    def close(self) -> None:
        self.released.set()
        if self.holder is not None:
            self.holder.join(timeout=5)
        self.inner.close()


def test_a_locked_database_makes_the_worker_retry_and_lose_nothing(
        ledger: Ledger, clock: FakeClock, tmp_path: Path,
        server: RunningStripeServer,
        caplog: pytest.LogCaptureFixture) -> None:
    ledger.ingest(some_usage(NOON, minutes=2), now_ms=int(NOON * 1000))
    policy = DeliveryPolicy(settle_s=0, poll_s=0.05)
    worker = worker_for(ledger.engine, lambda pace: LockAfterFirstSend(
        StripeSink(settings(server.url), pace),
        tmp_path / "ledger.sqlite3", hold_s=1.0), clock, policy)
    runner = threading.Thread(target=worker.run, args=(lambda c: None,))
    patient = open_engine(str(ledger.engine.url))  # waits out the lock
    with caplog.at_level(logging.WARNING):
        runner.start()
        done = eventually(lambda: uncounted(patient) == 0
                          and undelivered(patient) == 0, 30)
        worker.stop.set()
        runner.join(timeout=10)
    worker.sink.close()
    patient.dispose()
    assert done
    assert "event=pass_failed" in caplog.text  # the lock was felt
    assert len(calls(server.state, EVENTS_PATH)) > outbox_size(ledger.engine)
    assert identifiers_once(server.state)
    assert server.state.totals() == expected_totals(ledger)


def test_a_write_lock_held_briefly_is_waited_for(
        tmp_path: Path, ledgers: Ledgers, clock: FakeClock,
        server: RunningStripeServer) -> None:
    path = tmp_path / "wait.sqlite3"
    ledger = ledgers.at(f"sqlite:///{path}", busy_timeout_s=5.0)
    ledger.ingest(some_usage(NOON, minutes=1), now_ms=int(NOON * 1000))
    worker = worker_for(ledger.engine, v1_sink(server.url), clock)
    trying, released = threading.Event(), threading.Event()
    begins: list[tuple[str, bool]] = []  # (before/after, lock released?)

    def watch(when: str) -> Callable[..., None]:
        def listener(_connection: object, _cursor: object, statement: str,
                     *_: object) -> None:
            if statement == "BEGIN IMMEDIATE":
                begins.append((when, released.is_set()))
                trying.set()
        return listener

    for when in ("before", "after"):
        event.listen(ledger.engine, f"{when}_cursor_execute", watch(when))
    passes: list[PassCounts] = []
    runner = threading.Thread(target=lambda: passes.append(
        worker.run_once()))
    with write_lock(path):
        runner.start()
        assert trying.wait(timeout=5)  # the worker's first write began
        threading.Event().wait(0.2)  # time to reach SQLite's busy wait
        released.set()  # before the ROLLBACK that lets the worker on
    runner.join(timeout=30)
    worker.sink.close()
    # its first write began under the lock and ended only once it was let go
    assert begins[:2] == [("before", False), ("after", True)]
    assert [p.delivered for p in passes] == [6]
    assert server.state.totals() == expected_totals(ledger)


ACCOUNTS_TOML = """
[tiers.growth]
max_concurrent_streams = 20
audio_seconds_per_minute = 1_800

[customers.acme]
tier = "growth"
stripe_customer_id = "cus_acme"

[customers.beta]
tier = "growth"
stripe_customer_id = "cus_beta"
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_at_random_points_delivers_every_value_once(
        seed: int, tmp_path: Path, ledgers: Ledgers) -> None:
    """`deliver` killed with SIGKILL again and again, late events coming
    in between; restarted each time, it ends with Stripe's totals equal
    to the ledger's."""
    rng = Random(seed)
    now = time.time()
    url = f"sqlite:///{tmp_path}/ledger.sqlite3"
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(ACCOUNTS_TOML)
    ledger = ledgers.at(url)
    ledger.ingest(some_usage(now, minutes=rng.randint(15, 25)),
                  now_ms=int(now * 1000))
    state = StripeState(api_key=KEY)
    with running_stripe_server(state) as server:
        env = {**os.environ, "STRIPE_API_KEY": KEY,
               "STRIPE_API_BASE": server.url,
               "STRIPE_METER_EVENTS_API_BASE": server.url}
        command = [sys.executable, "-m", "ch08_metering", "deliver",
                   "--settle-s", "0", "--poll-s", "0.05",
                   "--max-calls-per-s", "100", "--database-url", url,
                   "--accounts", str(accounts)]

        def start(n: int) -> subprocess.Popen[bytes]:
            with (tmp_path / f"worker-{n}.log").open("wb") as log:
                return subprocess.Popen(command, cwd=REPO, env=env,
                                        stdout=log, stderr=log)

        kills = rng.randint(3, 5)
        for n in range(kills):
            worker = start(n)
            # Kill after a random number of further requests, or at a
            # random time (during start-up or a roll-up), which first.
            target = len(state.requests) + rng.randint(0, 25)
            state.wait_until(lambda s, t=target: (  # type: ignore[misc]
                len(s.requests) >= t), timeout=rng.uniform(0.3, 2.5))
            worker.send_signal(signal.SIGKILL)
            assert worker.wait(timeout=10) == -signal.SIGKILL
            ledger.ingest(some_usage(time.time(), minutes=2, tag=f"late{n}"),
                          now_ms=int(time.time() * 1000))
        last = start(kills)
        done = eventually(lambda: uncounted(ledger.engine) == 0
                          and undelivered(ledger.engine) == 0, 60)
        last.send_signal(signal.SIGTERM)
        assert last.wait(timeout=10) == 0
    log_text = "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))
    assert done, log_text
    assert identifiers_once(state)
    assert len(state.events) == outbox_size(ledger.engine)
    assert state.totals() == expected_totals(ledger, ACCOUNTS)
