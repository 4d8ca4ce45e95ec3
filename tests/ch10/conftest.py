"""Chapter 10 fixtures: databases on SQLite and PostgreSQL, a clock.

Every store test runs on both databases: SQLite files in a temporary
directory, PostgreSQL schemas of their own (`tests.databases`; without a
server the test is skipped, and fails in CI). `database_url` is one
database; `region_urls` is one per region (eu, us), for tests that must
show what did not reach the other region; `databases` adds the control
database and chapter 8's ledger. Time is a `ManualClock` the test moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ch10.store_fixtures import ManualClock
from tests.databases import postgres_schemas
from tests.databases import postgres_url as postgres_url

DATABASES = ("control", "ledger", "eu", "us")


def database_urls(request: pytest.FixtureRequest, tmp_path: Path,
                  names: tuple[str, ...]) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {name: f"sqlite:///{tmp_path}/{name}.sqlite3"
               for name in names}
    else:
        yield from postgres_schemas(names)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/control.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def region_urls(request: pytest.FixtureRequest,
                tmp_path: Path) -> Iterator[dict[str, str]]:
    yield from database_urls(request, tmp_path, ("eu", "us"))


@pytest.fixture(params=["sqlite", "postgres"])
def databases(request: pytest.FixtureRequest,
              tmp_path: Path) -> Iterator[dict[str, str]]:
    """Four databases: control, ledger, eu and us."""
    yield from database_urls(request, tmp_path, DATABASES)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
