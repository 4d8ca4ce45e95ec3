"""Chapter 10 fixtures: databases on SQLite and PostgreSQL, a clock.

Every store test runs on both databases: SQLite in a temporary
directory, PostgreSQL in a schema of its own (`tests.databases`; without
a server it is skipped, and fails in CI). Time is chapter 9's
`ManualClock`, moved by the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ch09.conftest import ManualClock
from tests.databases import postgres_url  # noqa: F401 (a fixture)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/control.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
