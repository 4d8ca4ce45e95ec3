"""One database connection setup for SQLite and PostgreSQL.

Chapter 8, "Metering architecture". The ledger runs on an embedded
SQLite file by default and on PostgreSQL when `DATABASE_URL` says so,
through one code path (SQLAlchemy Core). SQLite gets what a ledger
needs: write-ahead logging (readers never block the writer), a busy
timeout instead of an instant "database is locked", durable commits, and
`BEGIN IMMEDIATE`, so a transaction takes the write lock when it starts
rather than failing halfway when it first writes.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

DEFAULT_DATABASE = "sqlite:///build/metering.sqlite3"


def database_url(url: str | None) -> str:
    """`postgres://` and `postgresql://` mean the psycopg 3 driver."""
    url = url or DEFAULT_DATABASE
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    """`--database-url`, for every command that opens the ledger."""
    parser.add_argument("--database-url",
                        default=os.environ.get("DATABASE_URL"),
                        help="ledger (env DATABASE_URL; default SQLite "
                        "build/metering.sqlite3)")


def open_engine(url: str | None, busy_timeout_s: float = 5.0) -> Engine:
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
        connection.exec_driver_sql("BEGIN IMMEDIATE")
