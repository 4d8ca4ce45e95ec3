"""The metering database: ledger, Stripe outbox, dead letters.

Chapter 8, "Metering architecture" and "Audit trail for usage disputes".
`usage_events` is append-only: each accepted event is kept with its
original body, so any invoice line can be rebuilt from it. Its primary
key is the CloudEvents identity (source, id) within its customer: that
makes ingest idempotent, and keeps each customer's ids its own.
Delivery to Stripe works from `stripe_outbox`, filled by roll-ups of
settled minutes; each event records the roll-up that counted it, so
nothing is sent twice and nothing is skipped. Times are integer Unix
milliseconds in UTC: no time zones, no float drift.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()
IDENTITY = ["customer", "source", "id"]  # of a usage event, in the ledger

usage_events = Table(
    "usage_events", metadata,
    Column("customer", String(200), nullable=False),
    Column("source", String(200), nullable=False),
    Column("id", String(200), nullable=False),
    Column("meter", String(32), nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("features", String(200), nullable=False),  # sorted, commas
    Column("stream_id", String(200)),
    Column("event_time_ms", BigInteger, nullable=False),
    Column("accepted_at_ms", BigInteger, nullable=False),
    Column("body", Text, nullable=False),  # the event as accepted
    Column("rollup_id", BigInteger),  # set once counted for Stripe
    PrimaryKeyConstraint(*IDENTITY),
    Index("usage_by_customer_time", "customer", "event_time_ms"),
    Index("usage_by_rollup", "rollup_id", "event_time_ms"),
)

rollups = Table(
    "rollups", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"),
           primary_key=True, autoincrement=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("events", Integer, nullable=False),
)

def meter_event_columns() -> list[Column[Any]]:
    """One Stripe meter event: the outbox row, or its dead letter."""
    return [
        Column("identifier", String(100), primary_key=True),
        Column("rollup_id", BigInteger, nullable=False),
        Column("customer", String(200), nullable=False),
        Column("stripe_customer_id", String(200), nullable=False),
        Column("event_name", String(100), nullable=False),
        Column("timestamp_s", BigInteger, nullable=False),  # minute start
        Column("value", BigInteger, nullable=False),
    ]


stripe_outbox = Table(
    "stripe_outbox", metadata,
    *meter_event_columns(),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_ms", BigInteger, nullable=False, default=0),
    Column("last_error", Text),
    Column("delivered_at_ms", BigInteger),
    Index("outbox_due", "delivered_at_ms", "next_attempt_ms"),
)

stripe_dead_letters = Table(
    "stripe_dead_letters", metadata,
    *meter_event_columns(),
    Column("reason", Text, nullable=False),
    Column("dead_at_ms", BigInteger, nullable=False),
)

stripe_meters = Table(
    "stripe_meters", metadata,
    Column("event_name", String(100), primary_key=True),
    Column("meter_id", String(200), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
)
