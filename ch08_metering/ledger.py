"""The usage ledger: idempotent ingest and the queries invoices need.

Chapter 8, "Idempotent event collection" and "Aggregation pipeline".
Ingest checks uniqueness and writes in one transaction, by letting the
database do both: `INSERT ... ON CONFLICT DO NOTHING RETURNING` inserts
the new events and names them, and the rest are duplicates, answered
with their original acceptance. Nothing claims a key before the write
succeeds, so a failed write leaves nothing behind that would make the
retry look like a duplicate (the bug of openmeter#5118). An event's
identity is (customer, source, id): a customer's ids are its own, so
no one else's event can take one, or reveal that it is taken. A batch
can be taken whole: if any of its events reuses an id for different
content, none of them is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, Select, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from ch08_metering.events import EventKey, Rejected, UsageEvent
from ch08_metering.schema import IDENTITY, metadata, usage_events


@dataclass(frozen=True)
class Accepted:
    id: str
    accepted_at_ms: int


@dataclass(frozen=True)
class Duplicate:
    """Seen before: the original acceptance, not a new one."""

    id: str
    accepted_at_ms: int


Outcome = Accepted | Duplicate | Rejected


class LedgerBusyError(Exception):
    """The database could not take the write now; nothing was written."""


class LedgerConflictError(Exception):
    """A batch taken whole reused an id for a different event; none of
    it was written. `outcomes` answers each event as if it had been."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        super().__init__("id already used by a different event")
        self.outcomes = outcomes


class LedgerSchemaError(Exception):
    """The database holds a ledger of another layout than this code's."""


@dataclass(frozen=True)
class StreamUsage:
    """One stream's (or request's) total of one meter and features."""

    meter: str
    features: tuple[str, ...]
    stream_id: str | None
    value: int
    events: int


@dataclass(frozen=True)
class LedgerEvent:
    source: str
    id: str
    meter: str
    features: tuple[str, ...]
    stream_id: str | None
    value: int
    event_time_ms: int
    accepted_at_ms: int


def ledger_row(event: UsageEvent, now_ms: int) -> dict[str, object]:
    return {
        "source": event.source,
        "id": event.id,
        "customer": event.subject,
        "meter": event.data.meter,
        "value": event.data.value,
        "features": ",".join(sorted(set(event.data.features))),
        "stream_id": event.data.stream_id,
        "event_time_ms": event.time_ms,
        "accepted_at_ms": now_ms,
        "body": event.model_dump_json(),
    }


@dataclass(frozen=True)
class Ledger:
    engine: Engine

    def create(self) -> None:
        metadata.create_all(self.engine)
        require_identity(self.engine)

    def ingest(self, events: Sequence[UsageEvent], now_ms: int, *,
               whole: bool = False) -> list[Outcome]:
        """Record new events; answer each, in order. `whole`: write
        none of them if any is rejected (LedgerConflictError)."""
        first: dict[EventKey, int] = {}  # key -> first position
        for position, event in enumerate(events):
            first.setdefault(event.key, position)
        rows = [ledger_row(events[i], now_ms) for i in first.values()]
        try:
            with self.engine.begin() as connection:
                inserted = insert_new(connection, rows)
                earlier = accepted_before(
                    connection, [k for k in first if k not in inserted])
                outcomes = answers(events, first, earlier, now_ms)
                if whole and any(isinstance(o, Rejected) for o in outcomes):
                    raise LedgerConflictError(outcomes)  # rolls back
        except OperationalError as error:
            raise LedgerBusyError(str(error.orig)) from error
        return outcomes

    def stream_usage(self, customer: str, start_ms: int,
                     end_ms: int) -> list[StreamUsage]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                usage_by_stream(customer, start_ms, end_ms))
            return [StreamUsage(r.meter, split(r.features), r.stream_id,
                                int(r.value), int(r.events))
                    for r in rows]

    def events_of(self, customer: str, start_ms: int,
                  end_ms: int) -> list[LedgerEvent]:
        """Every raw event of a customer and period, oldest first."""
        t = usage_events.c
        query = (
            select(t.source, t.id, t.meter, t.features, t.stream_id,
                   t.value, t.event_time_ms, t.accepted_at_ms)
            .where(t.customer == customer, t.event_time_ms >= start_ms,
                   t.event_time_ms < end_ms)
            .order_by(t.event_time_ms, t.source, t.id)
        )
        with self.engine.connect() as connection:
            return [LedgerEvent(r.source, r.id, r.meter,
                                split(r.features), r.stream_id, r.value,
                                r.event_time_ms, r.accepted_at_ms)
                    for r in connection.execute(query)]

    def event_count(self) -> int:
        with self.engine.connect() as connection:
            count: int = connection.execute(
                select(func.count()).select_from(usage_events)).scalar_one()
            return count

    def totals(self) -> dict[tuple[str, str, tuple[str, ...]], int]:
        """Sum of every accepted value by customer, meter, features."""
        t = usage_events.c
        query = (select(t.customer, t.meter, t.features,
                        func.sum(t.value).label("value"))
                 .group_by(t.customer, t.meter, t.features))
        with self.engine.connect() as connection:
            return {(r.customer, r.meter, split(r.features)): int(r.value)
                    for r in connection.execute(query)}


# --8<-- [start:idempotent_insert]
def insert_new(connection: Connection,
               rows: list[dict[str, object]]) -> set[EventKey]:
    """Insert the rows whose (customer, source, id) is new; return
    their keys.

    The primary key decides, inside the same transaction as the write:
    a duplicate is skipped by the database, never by a check made
    earlier that a concurrent writer could invalidate.
    """
    if not rows:
        return set()
    dialect = postgresql if connection.dialect.name != "sqlite" else sqlite
    t = usage_events.c
    statement = (
        dialect.insert(usage_events)
        .on_conflict_do_nothing(index_elements=IDENTITY)
        .returning(t.customer, t.source, t.id)
    )
    return {(r.customer, r.source, r.id)
            for r in connection.execute(statement, rows)}
# --8<-- [end:idempotent_insert]


def accepted_before(connection: Connection, keys: list[EventKey]
                    ) -> dict[EventKey, tuple[str, int]]:
    """Body and acceptance time of events that were already there."""
    ids_of: dict[tuple[str, str], list[str]] = {}  # (customer, source)
    for customer, source, event_id in keys:
        ids_of.setdefault((customer, source), []).append(event_id)
    t = usage_events.c
    found: dict[EventKey, tuple[str, int]] = {}
    for (customer, source), ids in ids_of.items():  # the primary key
        rows = connection.execute(
            select(t.id, t.body, t.accepted_at_ms)
            .where(t.customer == customer, t.source == source,
                   t.id.in_(ids)))
        found |= {(customer, source, r.id): (r.body, r.accepted_at_ms)
                  for r in rows}
    return found


def answers(events: Sequence[UsageEvent], first: dict[EventKey, int],
            earlier: dict[EventKey, tuple[str, int]],
            now_ms: int) -> list[Outcome]:
    """Each event's outcome, in order: new at its first position,
    else the same as the one already there, or a conflict with it."""
    outcomes: list[Outcome] = []
    for position, event in enumerate(events):
        original = events[first[event.key]]
        if event.key in earlier:
            outcomes.append(same_or_conflict(event, *earlier[event.key]))
        elif position == first[event.key]:
            outcomes.append(Accepted(event.id, now_ms))
        else:  # repeated within this batch
            outcomes.append(same_or_conflict(
                event, original.model_dump_json(), now_ms))
    return outcomes


def require_identity(engine: Engine) -> None:
    """Refuse a ledger whose events are keyed otherwise than by
    `IDENTITY`: every idempotent insert into it would fail."""
    key = inspect(engine).get_pk_constraint(usage_events.name)
    if key["constrained_columns"] != IDENTITY:
        columns = ", ".join(key["constrained_columns"])
        raise LedgerSchemaError(
            f"the ledger keys usage events by ({columns}), an earlier"
            f" layout; this code keys them by ({', '.join(IDENTITY)}):"
            " start a new ledger, or move the events into one")


def same_or_conflict(event: UsageEvent, original_body: str,
                     accepted_at_ms: int) -> Outcome:
    """A retry of the same event is a duplicate; a reused id is not."""
    if UsageEvent.model_validate_json(original_body) == event:
        return Duplicate(event.id, accepted_at_ms)
    return Rejected(event.id, "id already used by a different event")


# --8<-- [start:aggregation_query]
def usage_by_stream(customer: str, start_ms: int, end_ms: int
                    ) -> Select[tuple[str, str, str | None, int, int]]:
    """One customer's usage in [start, end), summed per stream.

    Sums are taken per stream before any rounding rule is applied, so
    a stream metered every 60 s is priced as one request, not as many
    short ones; the period is by event time, in UTC milliseconds.
    """
    t = usage_events.c
    return (
        select(t.meter, t.features, t.stream_id,
               func.sum(t.value).label("value"),
               func.count().label("events"))
        .where(t.customer == customer,
               t.event_time_ms >= start_ms, t.event_time_ms < end_ms)
        .group_by(t.meter, t.features, t.stream_id)
        .order_by(t.meter, t.features, t.stream_id)
    )
# --8<-- [end:aggregation_query]


def split(features: str) -> tuple[str, ...]:
    return tuple(features.split(",")) if features else ()

