"""Delivery under faults: 429, 500, timeouts, refusals, locks, kill -9.

Whatever fails, Stripe ends up holding exactly the ledger's totals:
every value once. Waits poll a condition with a deadline.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from random import Random

import pytest
from sqlalchemy import Engine, event, insert, select

from ch08_metering.database import open_engine
from ch08_metering.delivery import (
    DeliveryPolicy,
    DeliveryWorker,
    PassCounts,
    backoff_s,
    remember_meters,
)
from ch08_metering.ledger import Ledger
from ch08_metering.schema import (
    stripe_dead_letters,
    stripe_outbox,
    usage_events,
)
from ch08_metering.stripe_sink import (
    MeterEvent,
    SendOutcome,
    StripeSettings,
    StripeSink,
    StripeStreamSink,
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
    SESSION_PATH,
    STREAM_PATH,
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
    # The worker's resend is another attempt, so another idempotency key:
    # an event committed before its answer was lost comes back as a
    # duplicate identifier, which counts as delivered.
    resent_duplicate = 1 if recorded and sdk_retries == 0 else 0
    assert first.delivered + second.delivered == 3 - resent_duplicate
    assert second.duplicates == resent_duplicate
    assert first.retried == (1 if sdk_retries == 0 else 0)
    assert undelivered(ledger.engine) == 0
    assert identifiers_once(server.state)
    assert server.state.totals() == expected_totals(ledger)


def test_a_refused_event_is_dead_lettered_and_the_rest_still_go(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    """Our clock says acme's minute is 34 days and 23 h 56 min old;
    Stripe's, 10 minutes ahead, says it is past the 35 days: a 400 that
    will never change, so acme's rows go to the dead letters alone."""
    edge = NOON - 35 * 86_400 + 240
    ledger.ingest(some_usage(edge, ("acme",), minutes=1, tag="edge")
                  + some_usage(NOON, ("beta",), minutes=1),
                  now_ms=int(NOON * 1000))
    server.state.advance(600)
    worker = worker_for(ledger.engine, v1_sink(server.url), clock)
    counts = worker.run_once()
    worker.sink.close()
    with ledger.engine.connect() as connection:
        dead = connection.execute(select(stripe_dead_letters)).all()
    assert (counts.dead_lettered, counts.delivered) == (3, 3)
    assert {d.customer for d in dead} == {"acme"}
    assert all(d.reason == "400: The timestamp must be within the past 35"
               " days." for d in dead)
    assert undelivered(ledger.engine) == 0
    assert set(server.state.totals()) == {
        ("cus_beta", "speech_audio_ms"),
        ("cus_beta", "speech_audio_ms_diarization"),
        ("cus_beta", "speech_characters")}


def test_an_unknown_stripe_customer_is_accepted_and_reported_later(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    """Stripe does not know cus_ghost, and says so only later, in its
    meter error reports: the rows are delivered, the report names them,
    and nothing of ghost's is counted."""
    ledger.ingest(some_usage(NOON, ("acme", "ghost"), minutes=1),
                  now_ms=int(NOON * 1000))
    worker = worker_for(ledger.engine, v1_sink(server.url), clock)
    counts = worker.run_once()
    worker.sink.close()
    reports = server.state.error_reports
    assert (counts.delivered, counts.dead_lettered) == (6, 0)
    assert calls(server.state, EVENTS_PATH) == [200] * 6
    assert {r.code for r in reports} == {"meter_event_customer_not_found"}
    assert len(reports) == 3
    assert all(r.identifier.startswith("ghost:") for r in reports)
    assert {c for c, _ in server.state.totals()} == {"cus_acme"}


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


def outbox_rows(engine: Engine) -> list[tuple[int, int]]:
    """(attempts, next_attempt_ms) of each undelivered row."""
    o = stripe_outbox.c
    with engine.connect() as connection:
        return [(r.attempts, r.next_attempt_ms)
                for r in connection.execute(
                    select(o.attempts, o.next_attempt_ms)
                    .where(o.delivered_at_ms.is_(None)))]


def test_a_500_saved_under_its_key_does_not_stall_the_row(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    """Stripe saves a key's first answer for 24 h, a 500 included: the
    SDK's retry with that key gets the 500 again, but the worker's next
    attempt has a key of its own and gets through."""
    ledger.ingest(some_usage(NOON, ("acme",), minutes=1),
                  now_ms=int(NOON * 1000))
    server.state.inject("500", saved=True)
    policy = DeliveryPolicy(settle_s=0, max_attempts=3)
    worker = worker_for(ledger.engine, v1_sink(server.url, retries=1),
                        clock, policy)
    first = worker.run_once()
    clock.now += 2  # past the first backoff (at most 1 s)
    second = worker.run_once()
    worker.sink.close()
    failed = [r for r in server.state.requests
              if r.path == EVENTS_PATH and r.status == 500]
    assert (first.retried, first.delivered) == (1, 2)
    assert (second.delivered, second.dead_lettered) == (1, 0)
    assert calls(server.state, EVENTS_PATH) == [500, 500, 200, 200, 200]
    assert len({r.idempotency_key for r in failed}) == 1  # a replay
    assert server.state.totals() == expected_totals(ledger)


def closed_port_url() -> str:
    """A local URL nothing listens on: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_call_that_never_reached_stripe_costs_no_attempt(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    ledger.ingest(some_usage(NOON, ("acme",), minutes=1),
                  now_ms=int(NOON * 1000))
    meters = StripeSink(settings(server.url), pace=lambda: None)
    remember_meters(ledger.engine, meters.ensure_meters(
        ["speech_audio_ms", "speech_audio_ms_diarization",
         "speech_characters"]), 0)
    meters.close()
    worker = worker_for(ledger.engine, v1_sink(closed_port_url(),
                                               retries=0), clock)
    refused = worker.run_once()
    worker.sink.close()
    assert outbox_rows(ledger.engine) == [(0, 0)] * 3  # untouched
    assert (refused.not_sent, refused.retried) == (1, 0)  # one call
    assert worker.run_once().not_sent == 0  # paused: no call at all
    assert 0 < worker.paused_until_ms - clock.now * 1000 <= 1_000


def stream_worker(engine: Engine, url: str, clock: FakeClock
                  ) -> DeliveryWorker:
    return worker_for(engine, lambda pace: StripeStreamSink(
        settings(url, retries=0), pace, clock), clock)


def test_a_failed_v2_session_costs_no_attempt_and_keeps_the_batch(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    ledger.ingest(some_usage(NOON, ("acme", "beta"), minutes=2),
                  now_ms=int(NOON * 1000))
    server.state.inject("500", paths={SESSION_PATH})
    worker = stream_worker(ledger.engine, server.url, clock)
    failed = worker.run_once()
    assert outbox_rows(ledger.engine) == [(0, 0)] * 12
    assert (failed.not_sent, failed.retried) == (12, 0)
    clock.now = worker.paused_until_ms / 1000
    assert worker.run_once().delivered == 12
    worker.sink.close()
    assert calls(server.state, SESSION_PATH) == [500, 200]
    assert calls(server.state, STREAM_PATH) == [200]  # still one call
    assert server.state.totals() == expected_totals(ledger)


def test_a_failed_v2_call_costs_one_attempt_and_its_rows_stay_together(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    ledger.ingest(some_usage(NOON, ("acme", "beta"), minutes=2),
                  now_ms=int(NOON * 1000))
    server.state.inject("500", paths={STREAM_PATH})
    worker = stream_worker(ledger.engine, server.url, clock)
    assert worker.run_once().retried == 12
    [(attempts, due_ms)] = set(outbox_rows(ledger.engine))
    assert attempts == 1
    clock.now = due_ms / 1000
    assert worker.run_once().delivered == 12
    worker.sink.close()
    assert calls(server.state, STREAM_PATH) == [500, 200]
    assert server.state.totals() == expected_totals(ledger)


class Ceiling(Random):
    """Jitter at its edge: every draw is the top of its range."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_the_backoff_ceiling_doubles_with_each_attempt() -> None:
    policy = DeliveryPolicy(base_backoff_s=1.0, max_backoff_s=3_600.0)
    assert [backoff_s(n, policy, Ceiling()) for n in range(1, 8)] == [
        1, 2, 4, 8, 16, 32, 64]
    assert backoff_s(13, policy, Ceiling()) == 3_600  # capped
    assert backoff_s(500, policy, Ceiling()) == 3_600


def test_each_retry_waits_a_seeded_draw_under_a_doubling_ceiling(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    ledger.ingest(some_usage(NOON, ("acme",), minutes=1),
                  now_ms=int(NOON * 1000))
    server.state.fail_for(3_600, "500")
    policy = DeliveryPolicy(settle_s=0, max_attempts=99)
    # pacing sleeps nothing here, so "now" is one instant per pass
    worker = worker_for(ledger.engine, v1_sink(server.url, retries=0),
                        clock, policy, sleep=lambda _: None, seed=11)
    waits_ms = []
    for _ in range(6):
        now_ms = int(clock.now * 1000)
        assert worker.run_once().retried == 3
        due_ms = {due for _, due in outbox_rows(ledger.engine)}
        waits_ms.append(sorted(due - now_ms for due in due_ms))
        clock.now = max(due_ms) / 1000
    worker.sink.close()
    mirror = Random(11)  # the worker's draws, one per row and attempt
    assert waits_ms == [
        sorted(int(mirror.uniform(0, 2 ** n) * 1000) for _ in range(3))
        for n in range(6)]
    assert max(waits_ms[5]) > 4_000  # past what 1, 2 or 4 s allow


def insert_stored_event(engine: Engine, event_id: str, at: float,
                        value: int, *, customer: str = "acme",
                        meter: str = "audio_ms") -> None:
    """A row as an older version may have written it: no ingest checks."""
    with engine.begin() as connection:
        connection.execute(insert(usage_events).values(
            source="legacy", id=event_id, customer=customer, meter=meter,
            value=value, features="", stream_id=None,
            event_time_ms=int(at * 1000), accepted_at_ms=int(at * 1000),
            body="{}", rollup_id=None))


def test_poison_rows_are_dead_lettered_and_every_other_minute_delivered(
        ledger: Ledger, clock: FakeClock,
        server: RunningStripeServer) -> None:
    """Three rows an older version wrote: a sum over 64 bits, a meter
    Stripe is not sent, and an outbox value over Stripe's 15 digits
    (which the v2 stream would take and report only later). Each goes
    to the dead letters; everyone else's minutes reach Stripe."""
    engine = ledger.engine
    ledger.ingest(some_usage(NOON, ("acme", "beta"), minutes=2),
                  now_ms=int(NOON * 1000))
    expected = expected_totals(ledger)
    minute = NOON - 60
    insert_stored_event(engine, "huge", minute + 5, 2**63 - 1)
    insert_stored_event(engine, "video", minute + 6, 9, customer="beta",
                        meter="video_ms")
    with engine.begin() as connection:
        connection.execute(insert(stripe_outbox).values(
            identifier="legacy-row", rollup_id=0, customer="beta",
            stripe_customer_id="cus_beta", event_name="speech_audio_ms",
            timestamp_s=int(minute), value=10**15, attempts=0,
            next_attempt_ms=0))
    worker = stream_worker(engine, server.url, clock)
    counts = worker.run_once()
    worker.sink.close()
    with engine.connect() as connection:
        reasons = sorted(connection.scalars(
            select(stripe_dead_letters.c.reason)))
    assert counts.dead_lettered == 3
    assert [r.split(" ")[0:2] for r in reasons] == [
        ["meter", "'video_ms'"], ["sum", str(2**63 - 1 + 1_250)],
        ["value", str(10**15)]]
    assert server.state.error_reports == []  # nothing lost silently
    acme_audio = ("cus_acme", "speech_audio_ms")
    assert server.state.totals() == expected | {
        acme_audio: expected[acme_audio] - 1_250}  # its 11:59 is dead
    assert undelivered(engine) == 0
