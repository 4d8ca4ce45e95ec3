"""Roll-ups: settled minutes of usage become rows of the Stripe outbox.

Chapter 8, "Aggregation pipeline" and "Billing period roll-up". Stripe
is sent one meter event per customer, meter and minute, not one per
usage event, and only for minutes that ended `settle_s` ago, because
events arrive late and waiting for them cuts calls. Each event is
counted by exactly one roll-up (its `rollup_id`), in the transaction
that writes the outbox rows, so a crash leaves either both or neither.
A row's identifier is derived from what it counts, so a retry sends the
same identifier and Stripe keeps one; an event that arrives after its
minute was rolled up goes into a new row with a new identifier, and
Stripe adds it. Timestamps are the minute's start in UTC (event time,
never the time of ingestion), so usage stays in its invoice period as
long as subscriptions are anchored on whole minutes. A customer's minute
that cannot become a row (a meter or feature Stripe is not sent, a sum
over 64 bits, a row the database refuses) goes to the dead letters with
the reason, in the same transaction: one bad row, written perhaps by an
older version, never stops the roll-up of everyone else.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import DataError, IntegrityError

from ch08_metering.accounts import Accounts
from ch08_metering.events import Feature
from ch08_metering.ledger import split
from ch08_metering.schema import (
    rollups,
    stripe_dead_letters,
    stripe_outbox,
    usage_events,
)

MINUTE_MS = 60_000
MAX_IDENTIFIER = 100  # Stripe's limit
MAX_BIGINT = 2**63 - 1  # the ledger's integers
FEATURES = frozenset(get_args(Feature))
READABLE_CUSTOMER = re.compile(r"[A-Za-z0-9_.-]{1,32}")
BASE_EVENT_NAMES = {
    "audio_ms": "speech_audio_ms",
    "characters": "speech_characters",
    "tokens": "speech_tokens",
    "compute_ms": "speech_compute_ms",
    "api_calls": "speech_api_calls",
}


def stripe_event_names(meter: str, features: Sequence[str]) -> list[str]:
    """The Stripe meters one event counts towards: base, then features.

    A feature is priced per unit of the base meter, so an hour of audio
    with diarization is an hour on `speech_audio_ms` and an hour on
    `speech_audio_ms_diarization`.
    """
    base = BASE_EVENT_NAMES[meter]
    return [base, *(f"{base}_{feature}" for feature in features)]


def settled_before_ms(now_ms: int, settle_s: float) -> int:
    """Events before this time are in minutes that ended settle_s ago."""
    waited = now_ms - round(settle_s * 1000)
    return waited - waited % MINUTE_MS


def meter_event_identifier(customer: str, event_name: str, minute_ms: int,
                           event_keys: Sequence[tuple[str, str]]) -> str:
    """Who, which meter, which minute, and a digest of the events counted.

    The same events always give the same identifier; two rows never
    count the same event, so two rows never share one.
    """
    counted = json.dumps(sorted(event_keys)).encode()
    digest = hashlib.sha256(counted).hexdigest()[:16]
    who = customer
    if not READABLE_CUSTOMER.fullmatch(customer):
        who = "h" + hashlib.sha256(customer.encode()).hexdigest()[:16]
    identifier = f"{who}:{event_name}:{minute_ms // 1000}:{digest}"
    if len(identifier) > MAX_IDENTIFIER:
        raise ValueError(f"identifier longer than {MAX_IDENTIFIER}: "
                         f"{identifier!r}")
    return identifier


@dataclass(frozen=True)
class RollupCounts:
    rollups: int = 0
    events: int = 0
    outbox_rows: int = 0
    dead_letters: int = 0  # customers with no Stripe id

    def plus(self, other: RollupCounts) -> RollupCounts:
        return RollupCounts(self.rollups + other.rollups,
                            self.events + other.events,
                            self.outbox_rows + other.outbox_rows,
                            self.dead_letters + other.dead_letters)


@dataclass
class MinuteUsage:
    value: int = 0
    event_keys: list[tuple[str, str]] = field(default_factory=list)
    problem: str | None = None  # why it cannot be sent to Stripe


def roll_up(engine: Engine, accounts: Accounts, now_ms: int,
            settle_s: float) -> RollupCounts:
    """Roll up every settled event not yet counted, a minute at a time.

    One minute per transaction bounds how long a lock is held, and a
    customer's minute is never split across two calls.
    """
    before_ms = settled_before_ms(now_ms, settle_s)
    total = RollupCounts()
    while True:
        with engine.begin() as connection:
            counts = roll_up_next_minute(connection, accounts, before_ms,
                                         now_ms)
        if counts.events == 0:
            return total
        total = total.plus(counts)


def roll_up_next_minute(connection: Connection, accounts: Accounts,
                        before_ms: int, now_ms: int) -> RollupCounts:
    t = usage_events.c
    first: int | None = connection.scalar(
        select(func.min(t.event_time_ms))
        .where(t.rollup_id.is_(None), t.event_time_ms < before_ms))
    if first is None:
        return RollupCounts()
    # --8<-- [start:roll_up_claim]
    minute_ms = first - first % MINUTE_MS
    rollup_id: int = connection.execute(
        insert(rollups).values(created_at_ms=now_ms, events=0)
        .returning(rollups.c.id)).scalar_one()
    # Claim and read in one statement: the events marked are exactly
    # the events counted, whatever is written meanwhile. A concurrent
    # roll-up of the same minute waits, then finds nothing to claim.
    events = connection.execute(
        update(usage_events)
        .where(t.rollup_id.is_(None), t.event_time_ms >= minute_ms,
               t.event_time_ms < min(minute_ms + MINUTE_MS, before_ms))
        .values(rollup_id=rollup_id)
        .returning(t.source, t.id, t.customer, t.meter, t.features,
                   t.value, t.event_time_ms)).all()
    # --8<-- [end:roll_up_claim]
    connection.execute(update(rollups).where(rollups.c.id == rollup_id)
                       .values(events=len(events)))
    outbox: list[dict[str, object]] = []
    dead: list[dict[str, object]] = []
    for (customer, name, minute), usage in sum_by_minute(events).items():
        row, problem = minute_row(customer, name, minute, usage, accounts)
        row["rollup_id"] = rollup_id
        if problem is None:
            outbox.append(row | {"attempts": 0, "next_attempt_ms": 0})
        else:  # kept for a human, never silently dropped
            dead.append(row | {"dead_at_ms": now_ms, "reason": problem})
    refused = insert_outbox_rows(connection, outbox)
    dead += [row_refused(row, error, now_ms) for row, error in refused]
    if dead:
        connection.execute(insert(stripe_dead_letters), dead)
    return RollupCounts(1 if events else 0, len(events),
                        len(outbox) - len(refused), len(dead))


def minute_row(customer: str, name: str, minute_ms: int,
               usage: MinuteUsage, accounts: Accounts
               ) -> tuple[dict[str, object], str | None]:
    """A customer's minute on one meter as an outbox row, and why it
    cannot be sent, if it cannot."""
    known = accounts.customers.get(customer)
    problem = usage.problem
    if known is None:
        problem = (f"customer {customer!r} is not in the accounts file:"
                   " no Stripe customer id")
    value = usage.value
    if not -MAX_BIGINT - 1 <= value <= MAX_BIGINT:
        problem = (f"sum {value} of {len(usage.event_keys)} events does"
                   " not fit a 64-bit integer (stored as 0)")
        value = 0
    try:
        identifier = meter_event_identifier(customer, name, minute_ms,
                                            usage.event_keys)
    except ValueError as error:
        problem = str(error)
        identifier = "h" + hashlib.sha256(
            f"{customer}:{name}:{minute_ms}".encode()).hexdigest()[:32]
    return {"identifier": identifier, "customer": customer,
            "stripe_customer_id": known.stripe_customer_id if known else "",
            "event_name": name, "timestamp_s": minute_ms // 1000,
            "value": value}, problem


def insert_outbox_rows(connection: Connection,
                       rows: Sequence[dict[str, object]]
                       ) -> list[tuple[dict[str, object], Exception]]:
    """Insert all rows at once; if the database refuses that, each row
    alone (a savepoint each), so one refused row stops no other. Returns
    the refused rows with why."""
    if not rows:
        return []
    try:
        with connection.begin_nested():
            connection.execute(insert(stripe_outbox), rows)
        return []
    except (DataError, IntegrityError):
        pass
    refused: list[tuple[dict[str, object], Exception]] = []
    for row in rows:
        try:
            with connection.begin_nested():
                connection.execute(insert(stripe_outbox), row)
        except (DataError, IntegrityError) as error:
            refused.append((row, error))
    return refused


def row_refused(row: dict[str, object], error: Exception,
                now_ms: int) -> dict[str, object]:
    """The dead letter of a row the database would not take."""
    reason = str(error.args[0] if error.args else error).splitlines()[0]
    moved = {k: v for k, v in row.items()
             if k not in ("attempts", "next_attempt_ms")}
    return moved | {"dead_at_ms": now_ms,
                    "reason": f"the ledger refused the row: {reason}"}


def sum_by_minute(events: Sequence[Row[*tuple[Any, ...]]]
                  ) -> dict[tuple[str, str, int], MinuteUsage]:
    """Sum values per (customer, Stripe event name, UTC minute start).

    An event whose meter or feature Stripe is not sent is summed under
    its raw meter name, with the problem, so it can be dead-lettered.
    """
    minutes: dict[tuple[str, str, int], MinuteUsage] = defaultdict(
        MinuteUsage)
    for e in events:
        minute_ms = e.event_time_ms - e.event_time_ms % MINUTE_MS
        problem = event_problem(e.meter, split(e.features))
        names = ([e.meter] if problem
                 else stripe_event_names(e.meter, split(e.features)))
        for name in names:
            usage = minutes[(e.customer, name, minute_ms)]
            usage.value += e.value
            usage.event_keys.append((e.source, e.id))
            usage.problem = usage.problem or problem
    return minutes


def event_problem(meter: str, features: Sequence[str]) -> str | None:
    """Why a stored event has no Stripe meter, if it has none."""
    if meter not in BASE_EVENT_NAMES:
        return f"meter {meter!r} is not sent to Stripe"
    unknown = sorted(set(features) - FEATURES)
    if unknown:
        return f"feature {unknown[0]!r} is not sent to Stripe"
    return None
