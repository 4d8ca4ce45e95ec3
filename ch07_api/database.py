"""One database setup for SQLite and PostgreSQL.

Chapter 7, "Resource-oriented API design" (operations that survive a
restart), and chapter 8's ledger, which builds on it. A service keeps
its records in an embedded SQLite file by default and in PostgreSQL
when its database URL says so, through one code path (SQLAlchemy
Core). SQLite gets what a service's records need: write-ahead logging
(readers never block the writer), a busy timeout instead of an instant
"database is locked", durable commits, and `BEGIN IMMEDIATE`, so a
transaction takes the write lock when it starts rather than failing
halfway when it first writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event


def database_url(url: str) -> str:
    """`postgres://` and `postgresql://` mean the psycopg 3 driver."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


def open_engine(url: str, busy_timeout_s: float = 5.0) -> Engine:
    url = database_url(url)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})
    configure_sqlite(engine)
    return engine


def configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(connection: Any, _record: object) -> None:
        connection.isolation_level = None  # we issue BEGIN ourselves
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # commits survive
        connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        # A connection that only reads takes no write lock: in WAL
        # mode it never waits for the writer (chapter 9's key lookups).
        if connection.get_execution_options().get("read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
