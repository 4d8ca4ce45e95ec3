"""The delivery worker: roll up settled usage, then send it to Stripe.

Chapter 8, "Stripe Meters API integration". Delivery is at-least-once
and Stripe's identifiers make it exactly-once: a row is marked delivered
only after Stripe accepted it or said it already had it, so a worker
killed at any point sends the row again and Stripe keeps one. Nothing is
retried forever: a row is retried with exponential backoff and full
jitter up to an attempt cap, then moved to the dead letters with its
last error; so is a row Stripe refuses, or one Stripe would refuse (a
timestamp outside its window, 35 days back and 5 minutes ahead, or a
value that is not a whole number of at most 15 digits): one bad row
never holds up the others. A call that never reached Stripe costs no
attempt; the worker pauses, with backoff, and tries again. One worker
paces all its calls (a global rate, halved and paused after a 429), so
flushing many customers at once does not burst; it sends one call at a
time, which also keeps Stripe's "one concurrent call per customer per
meter".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from random import Random
from typing import assert_never

import stripe
from sqlalchemy import (
    Engine,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from ch08_metering.accounts import Accounts
from ch08_metering.events import window_problem
from ch08_metering.rollup import roll_up
from ch08_metering.schema import (
    meter_event_columns,
    stripe_dead_letters,
    stripe_meters,
    stripe_outbox,
)
from ch08_metering.stripe_sink import (
    Delivered,
    MeterEvent,
    MeterSink,
    NotSent,
    Recorded,
    Refused,
    RetryLater,
    StripeUnavailableError,
)

log = logging.getLogger(__name__)
MAX_STRIPE_VALUE = 10**15 - 1  # Stripe takes at most 15 digits


@dataclass(frozen=True)
class DeliveryPolicy:
    settle_s: float = 120.0  # a 60 s metering interval, plus lag
    max_calls_per_s: float = 20.0  # under test mode's 25/s
    base_backoff_s: float = 1.0
    max_backoff_s: float = 3_600.0
    max_attempts: int = 25  # ~7 h of backoff (13 h at most), then a human
    rows_per_pass: int = 1_000
    poll_s: float = 5.0


@dataclass
class PassCounts:
    rolled_up: int = 0  # usage events counted into the outbox
    delivered: int = 0
    duplicates: int = 0  # Stripe had them already: delivered too
    retried: int = 0
    dead_lettered: int = 0
    recorded: int = 0  # dry run: written down, not sent
    not_sent: int = 0  # their call never reached Stripe: no attempt

    def summary(self) -> str:
        return " ".join(f"{name}={n}" for name, n in asdict(self).items())


@dataclass(frozen=True)
class DueRow:
    event: MeterEvent
    attempts: int


@dataclass
class Throttle:
    """One pace for every call to Stripe (the sink calls `wait`):
    additive increase, multiplicative decrease, a pause after a 429."""

    max_per_s: float
    clock: Callable[[], float]  # monotonic seconds
    sleep: Callable[[float], object]
    per_s: float = field(init=False)
    next_call_s: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.per_s = self.max_per_s

    def wait(self) -> None:
        delay = self.next_call_s - self.clock()
        if delay > 0:
            self.sleep(delay)
        self.next_call_s = (max(self.next_call_s, self.clock())
                            + 1 / self.per_s)

    def slow_down(self, pause_s: float) -> None:
        self.per_s = max(self.per_s / 2, self.max_per_s / 64)
        self.pause(pause_s)

    def pause(self, pause_s: float) -> None:
        self.next_call_s = max(self.next_call_s, self.clock() + pause_s)

    def speed_up(self) -> None:
        self.per_s = min(self.max_per_s, self.per_s + self.max_per_s / 16)


def backoff_s(attempt: int, policy: DeliveryPolicy, random: Random) -> float:
    """Full jitter: anywhere in [0, base * 2^(attempt-1)], capped."""
    ceiling = policy.base_backoff_s * 2 ** min(attempt - 1, 32)
    return random.uniform(0, min(policy.max_backoff_s, ceiling))


def stripe_window_problem(timestamp_s: int, now_s: float) -> str | None:
    """Why Stripe would refuse this timestamp, if it would."""
    at, now = (datetime.fromtimestamp(t, UTC) for t in (timestamp_s, now_s))
    problem = window_problem(at, now)
    if problem is None:
        return None
    code, action = (
        ("timestamp_too_far_in_past", "bill it by hand") if at < now
        else ("timestamp_in_future", "check the clock"))
    return f"timestamp {at.isoformat()} is {problem} ({code}): {action}"


def stripe_value_problem(value: int) -> str | None:
    """Why Stripe would refuse this value, if it would. The v2 stream
    would accept it and report it later, so it is caught before."""
    if 0 <= value <= MAX_STRIPE_VALUE:
        return None
    return (f"value {value} is not a whole number of at most 15 digits"
            " (meter_event_invalid_value): bill it by hand")


def unsendable(event: MeterEvent, now_s: float) -> str | None:
    """Why Stripe would refuse this row, checked before it is sent."""
    return (stripe_window_problem(event.timestamp_s, now_s)
            or stripe_value_problem(event.value))


@dataclass
class DeliveryWorker:
    """One per ledger: it makes one call at a time, oldest rows first."""

    engine: Engine
    accounts: Accounts
    sink: MeterSink
    clock: Callable[[], float]  # wall clock, Unix seconds
    throttle: Throttle
    random: Random
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    stop: threading.Event = field(default_factory=threading.Event)
    rate_limited_in_a_row: int = 0
    unsent_in_a_row: int = 0  # calls in a row that never reached Stripe
    paused_until_ms: int = 0  # wall clock; no call before then

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def run(self, on_pass: Callable[[PassCounts], object]) -> None:
        """Pass after pass until `stop` is set; a failed pass waits."""
        while not self.stop.is_set():
            try:
                on_pass(self.run_once())
            except (OperationalError, StripeUnavailableError) as error:
                log.warning("event=pass_failed retry_in_s=%s error=%r",
                            self.policy.poll_s, str(error)[:300])
            self.stop.wait(self.policy.poll_s)

    def drain(self, timeout_s: float,
              on_pass: Callable[[PassCounts], object]) -> int:
        """Pass after pass until no row is due or waiting for a retry,
        `timeout_s` has passed, or `stop` is set; waits sleep until the
        next row is due. Returns the rows left undelivered."""
        deadline_ms = self.now_ms() + int(timeout_s * 1000)
        while not self.stop.is_set():
            try:
                on_pass(self.run_once())
            except OperationalError as error:  # a lock: wait, try again
                log.warning("event=pass_failed error=%r", str(error)[:300])
                self.stop.wait(self.policy.poll_s)
                continue
            wake_ms = self.next_wake_ms()
            if wake_ms is None or wake_ms > deadline_ms:
                break
            self.stop.wait(max(0, wake_ms - self.now_ms()) / 1000)
        return undelivered_rows(self.engine)

    def next_wake_ms(self) -> int | None:
        """When a row is next due (or the pause ends); None: none waits."""
        due_ms = next_due_ms(self.engine)
        if due_ms is None:
            return None
        return max(due_ms, self.paused_until_ms)

    def run_once(self) -> PassCounts:
        """Roll up what has settled, then send what is due, oldest first."""
        counts = PassCounts()
        rolled = roll_up(self.engine, self.accounts, self.now_ms(),
                         self.policy.settle_s)
        counts.rolled_up = rolled.events
        counts.dead_lettered = rolled.dead_letters
        if self.now_ms() < self.paused_until_ms:
            return counts  # Stripe could not be reached: not yet again
        due = due_rows(self.engine, self.now_ms(), self.policy.rows_per_pass)
        if not self.meters_ready(due):
            return counts
        sendable = self.drop_unsendable(due, counts)
        size = self.sink.max_batch
        for start in range(0, len(sendable), size):
            if self.stop.is_set():
                break
            if not self.deliver(sendable[start:start + size], counts):
                break
        return counts

    def drop_unsendable(self, due: Sequence[DueRow],
                        counts: PassCounts) -> list[DueRow]:
        """Dead-letter the rows Stripe would refuse; keep the rest."""
        sendable = []
        for row in due:
            problem = unsendable(row.event, self.clock())
            if problem is None:
                sendable.append(row)
            else:
                dead_letter(self.engine, [row], problem, self.now_ms())
                counts.dead_lettered += 1
        return sendable

    def meters_ready(self, due: Sequence[DueRow]) -> bool:
        """Create the Stripe meters the rows need, once, and remember."""
        missing = ({row.event.event_name for row in due}
                   - known_meters(self.engine))
        if not missing:
            return True
        try:
            meter_ids = self.sink.ensure_meters(sorted(missing))
        except stripe.StripeError as error:
            log.warning("event=meters_not_ready error=%r", str(error))
            return False
        remember_meters(self.engine, meter_ids, self.now_ms())
        return True

    def deliver(self, batch: Sequence[DueRow], counts: PassCounts) -> bool:
        """Send one call; False when the pass should send no more."""
        outcome = self.sink.send([row.event for row in batch])
        now_ms = self.now_ms()
        match outcome:
            case Delivered(duplicate=duplicate):
                mark_delivered(self.engine, batch, now_ms)
                if duplicate:
                    counts.duplicates += len(batch)
                else:
                    counts.delivered += len(batch)
                self.rate_limited_in_a_row = self.unsent_in_a_row = 0
                self.throttle.speed_up()
            case RetryLater():
                self.retry_later(batch, outcome, now_ms, counts)
            case Refused() if len(batch) > 1:
                # One bad event may refuse a whole v2 call: each row alone
                # finds it, and only its own refusal dead-letters it.
                return all(self.deliver([row], counts) for row in batch)
            case Refused(reason=reason):
                dead_letter(self.engine, batch, reason, now_ms)
                counts.dead_lettered += len(batch)
            case Recorded():
                counts.recorded += len(batch)
            case NotSent(reason=reason):
                self.pause_sending(reason, now_ms)
                counts.not_sent += len(batch)
                return False  # the next call would not get through either
            case _:
                assert_never(outcome)
        return True

    def pause_sending(self, reason: str, now_ms: int) -> None:
        """Stripe unreachable: every row waits, none spends an attempt."""
        self.unsent_in_a_row += 1
        pause_s = backoff_s(self.unsent_in_a_row, self.policy, self.random)
        self.paused_until_ms = now_ms + int(pause_s * 1000)
        log.warning("event=stripe_unreachable pause_s=%.1f error=%r",
                    pause_s, reason[:300])

    def retry_later(self, batch: Sequence[DueRow], outcome: RetryLater,
                    now_ms: int, counts: PassCounts) -> None:
        """Each row spends an attempt: the call reached Stripe and may
        have been seen, so the cap must bound it. A v2 call failed as a
        whole, so its rows share one backoff and go out together again
        instead of scattering into one-row calls."""
        if outcome.rate_limited:  # everyone waits, not just this row
            self.rate_limited_in_a_row += 1
            self.throttle.slow_down(backoff_s(
                self.rate_limited_in_a_row, self.policy, self.random))
        attempts = max(row.attempts for row in batch) + 1
        delay_ms = int(backoff_s(attempts, self.policy, self.random) * 1000)
        cap = self.policy.max_attempts
        spent = [r for r in batch if r.attempts + 1 >= cap]
        for row in spent:
            dead_letter(self.engine, [row], f"gave up after "
                        f"{row.attempts + 1} attempts; last error: "
                        f"{outcome.reason}", now_ms)
        waiting = [r for r in batch if r not in spent]
        schedule_retries(self.engine, waiting, now_ms + delay_ms,
                         outcome.reason)
        counts.dead_lettered += len(spent)
        counts.retried += len(waiting)


def due_rows(engine: Engine, now_ms: int, limit: int) -> list[DueRow]:
    o = stripe_outbox.c
    query = (
        select(o.identifier, o.event_name, o.stripe_customer_id, o.value,
               o.timestamp_s, o.attempts)
        .where(o.delivered_at_ms.is_(None), o.next_attempt_ms <= now_ms)
        .order_by(o.timestamp_s, o.identifier)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [DueRow(MeterEvent(r.identifier, r.event_name,
                                  r.stripe_customer_id, r.value,
                                  r.timestamp_s, attempt=r.attempts + 1),
                       r.attempts)
                for r in connection.execute(query)]


def next_due_ms(engine: Engine) -> int | None:
    """When the earliest undelivered row is due; None if none is left."""
    o = stripe_outbox.c
    with engine.connect() as connection:
        due: int | None = connection.scalar(
            select(func.min(o.next_attempt_ms))
            .where(o.delivered_at_ms.is_(None)))
    return due


def undelivered_rows(engine: Engine) -> int:
    o = stripe_outbox.c
    with engine.connect() as connection:
        return int(connection.scalar(
            select(func.count()).select_from(stripe_outbox)
            .where(o.delivered_at_ms.is_(None))) or 0)


def mark_delivered(engine: Engine, rows: Sequence[DueRow],
                   now_ms: int) -> None:
    o = stripe_outbox.c
    with engine.begin() as connection:
        connection.execute(
            update(stripe_outbox)
            .where(o.identifier.in_([r.event.identifier for r in rows]))
            .values(delivered_at_ms=now_ms, attempts=o.attempts + 1))


def schedule_retries(engine: Engine, rows: Sequence[DueRow],
                     next_attempt_ms: int, error: str) -> None:
    """One more attempt spent by each row; all due again at one time."""
    if not rows:
        return
    o = stripe_outbox.c
    with engine.begin() as connection:
        connection.execute(
            update(stripe_outbox)
            .where(o.identifier.in_([r.event.identifier for r in rows]))
            .values(attempts=o.attempts + 1,
                    next_attempt_ms=next_attempt_ms, last_error=error))


def dead_letter(engine: Engine, rows: Sequence[DueRow], reason: str,
                now_ms: int) -> None:
    """Move rows from the outbox to the dead letters, in one transaction."""
    o = stripe_outbox.c
    moved = [c.name for c in meter_event_columns()]
    ids = [r.event.identifier for r in rows]
    with engine.begin() as connection:
        connection.execute(insert(stripe_dead_letters).from_select(
            [*moved, "reason", "dead_at_ms"],
            select(*(o[name] for name in moved), literal(reason),
                   literal(now_ms)).where(o.identifier.in_(ids))))
        connection.execute(delete(stripe_outbox).where(
            o.identifier.in_(ids)))


def known_meters(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(select(stripe_meters.c.event_name)))


def remember_meters(engine: Engine, meter_ids: Mapping[str, str],
                    now_ms: int) -> None:
    if not meter_ids:
        return
    dialect = postgresql if engine.dialect.name != "sqlite" else sqlite
    with engine.begin() as connection:
        connection.execute(
            dialect.insert(stripe_meters)
            .on_conflict_do_nothing(index_elements=["event_name"]),
            [{"event_name": name, "meter_id": meter_id,
              "created_at_ms": now_ms}
             for name, meter_id in meter_ids.items()])
