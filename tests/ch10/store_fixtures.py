"""What the chapter 10 tests build stores and objects with.

A regional store on a test's database, under a fixed master key; the
audio and transcript objects the tests keep; time as a `ManualClock`
the test moves (the fixtures are in `conftest.py`); audit events in a
`ListSink`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ch07_api import database
from ch09_security.key_ring import KeyRing
from ch10_compliance.audit_event import AuditEvent
from ch10_compliance.data_classes import DataClass
from ch10_compliance.regional_store import Governed, RegionalStore

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


def open_stores(urls: dict[str, str], clock: ManualClock,
                eu_capacity: int) -> Iterator[dict[str, RegionalStore]]:
    """A store per region, the EU's holding `eu_capacity` bytes;
    closed when the test is done."""
    opened = {region: open_store(url, region, clock,
                                 eu_capacity if region == "eu" else None)
              for region, url in urls.items()}
    yield opened
    for store in opened.values():
        store.engine.dispose()


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
