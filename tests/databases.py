"""A PostgreSQL schema of its own for each test that needs one.

Tests of code that keeps records (chapter 7's operations, chapter 8's
ledger) run on SQLite and on PostgreSQL. Each PostgreSQL test gets a new,
empty schema that is dropped afterwards; without a server the test is
skipped, or fails in CI (`tests.environment.unavailable`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.environment import unavailable

POSTGRES = os.environ.get("TEST_DATABASE_URL",
                          "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections see only a new, empty schema."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        unavailable(f"PostgreSQL not reachable at {POSTGRES}: {error}")
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def postgres_schemas(names: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """A new PostgreSQL schema per name, each dropped afterwards: a
    database apiece for tests that must show what did not reach
    another (chapter 10's regions)."""
    schemas = {name: f"t_{name}_{uuid.uuid4().hex[:10]}" for name in names}
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        unavailable(f"PostgreSQL not reachable at {POSTGRES}: {error}")
    with admin:
        for schema in schemas.values():
            admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield {name: f"{POSTGRES}?options=-csearch_path%3D{schema}"
                   for name, schema in schemas.items()}
        finally:
            for schema in schemas.values():
                admin.execute(f"DROP SCHEMA {schema} CASCADE")
