"""What the ingest tests share: events as a sender writes them, the
keys that send them, and a ledger of an earlier layout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import Column, MetaData, Table

from ch04_streaming.auth import ApiKeys
from ch08_metering.accounts import load_accounts
from ch08_metering.database import open_engine
from ch08_metering.ingest_api import create_ingest_app
from ch08_metering.ledger import Ledger
from ch08_metering.schema import usage_events
from tests.ch08.delivery_harness import NOON_UTC

NOW = NOON_UTC  # the ingest API's clock
# acme's key, and one that no account holds
CUSTOMER_KEYS = ApiKeys.of("acme-key", "orphan-key")
KEY = "service-key"  # a metering service's: any customer's usage
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json"}


def raw_event(n: int, **changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "specversion": "1.0", "id": f"stream-{n}", "source": "test",
        "type": "com.speechapi.usage.v1", "subject": "acme",
        "time": NOW.isoformat(),
        "data": {"meter": "audio_ms", "value": 1500,
                 "features": ["diarization"], "stream_id": "stream"},
    }
    data = dict(event["data"])  # type: ignore[call-overload]
    for name, value in changes.items():
        if name in data:
            data[name] = value
        else:
            event[name] = value
    event["data"] = data
    return event


def create_earlier_ledger(url: str) -> None:
    """`usage_events` as it was when (source, id) alone was the key."""
    engine = open_engine(url)
    earlier = MetaData()
    Table("usage_events", earlier,
          *(Column(c.name, c.type, primary_key=c.name in ("source", "id"))
            for c in usage_events.columns))
    earlier.create_all(engine)
    engine.dispose()


@asynccontextmanager
async def ingest_client(
    ledger: Ledger, keys: ApiKeys = CUSTOMER_KEYS,
) -> AsyncIterator[httpx.AsyncClient]:
    """The ingest API on `ledger`, in process: `keys` (acme's and one
    with no account), and the service key."""
    app = create_ingest_app(ledger, load_accounts(), keys,
                            clock=NOW.timestamp,
                            service_keys=ApiKeys.of(KEY))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport,
                                 base_url="http://ingest") as client:
        yield client
