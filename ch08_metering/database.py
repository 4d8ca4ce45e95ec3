"""The ledger's database: chapter 7's SQLite/PostgreSQL setup, and where.

Chapter 8, "Metering architecture". The ledger runs on an embedded
SQLite file by default and on PostgreSQL when `DATABASE_URL` says so,
through chapter 7's one code path (`ch07_api.database`: write-ahead
logging, a busy timeout, durable commits, `BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import argparse
import os

from sqlalchemy import Engine

from ch07_api import database

DEFAULT_DATABASE = "sqlite:///build/metering.sqlite3"


def database_url(url: str | None) -> str:
    """`postgres://` and `postgresql://` mean the psycopg 3 driver."""
    return database.database_url(url or DEFAULT_DATABASE)


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    """`--database-url`, for every command that opens the ledger."""
    parser.add_argument("--database-url",
                        default=os.environ.get("DATABASE_URL"),
                        help="ledger (env DATABASE_URL; default SQLite "
                        "build/metering.sqlite3)")


def open_engine(url: str | None, busy_timeout_s: float = 5.0) -> Engine:
    return database.open_engine(url or DEFAULT_DATABASE, busy_timeout_s)
