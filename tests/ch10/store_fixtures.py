"""Fixtures for the regional stores, consents and processing records.

Every store test runs on SQLite and on PostgreSQL. `database_url` is
one database; `region_urls` is two (two SQLite files, or two
PostgreSQL schemas), one per region, for tests that must show what
did not reach the other region. Time is a `ManualClock` the test
moves; audit events land in a `ListSink`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from ch07_api import database
from ch09_security.key_ring import KeyRing
from ch10_compliance.audit_event import AuditEvent
from ch10_compliance.data_classes import DataClass
from ch10_compliance.regional_store import Governed, RegionalStore
from tests.databases import POSTGRES
from tests.databases import postgres_url as postgres_url
from tests.environment import unavailable

MASTER = bytes(range(32))
DAY_MS = 86_400_000
NOON = 20_600 * DAY_MS + DAY_MS // 2  # noon UTC on day 20600
AUDIO = bytes(range(256)) * 4  # 1 KiB of "audio"
WORDS = b"please read me the weather forecast"


@dataclass
class ManualClock:
    now_ms: int = NOON

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@dataclass
class ListSink:
    events: list[AuditEvent] = field(default_factory=list)

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/control.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def region_urls(request: pytest.FixtureRequest,
                tmp_path: Path) -> Iterator[dict[str, str]]:
    """A database per region: eu and us."""
    if request.param == "sqlite":
        yield {region: f"sqlite:///{tmp_path}/region-{region}.sqlite3"
               for region in ("eu", "us")}
        return
    schemas = {region: f"t_{region}_{uuid.uuid4().hex[:10]}"
               for region in ("eu", "us")}
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        unavailable(f"PostgreSQL not reachable at {POSTGRES}: {error}")
    with admin:
        for schema in schemas.values():
            admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield {region: f"{POSTGRES}?options=-csearch_path%3D{schema}"
                   for region, schema in schemas.items()}
        finally:
            for schema in schemas.values():
                admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def open_store(url: str, region: str, clock: ManualClock,
               capacity_bytes: int | None = None) -> RegionalStore:
    store = RegionalStore(region, database.open_engine(url),
                          KeyRing(MASTER, clock), clock, capacity_bytes)
    store.create_schema()
    return store


def audio(owner: str = "acme", subject: str = "alice",
          region: str = "eu", stream_id: str = "st_1",
          data: bytes = AUDIO, expires_at_ms: int = NOON + DAY_MS,
          ) -> Governed:
    return Governed(owner, subject, region, DataClass.AUDIO, stream_id,
                    data, expires_at_ms, "linear16", 16_000)


def transcript(owner: str = "acme", subject: str = "alice",
               region: str = "eu", stream_id: str = "st_1",
               expires_at_ms: int = NOON + DAY_MS) -> Governed:
    return Governed(owner, subject, region, DataClass.TRANSCRIPT,
                    stream_id, WORDS, expires_at_ms)
