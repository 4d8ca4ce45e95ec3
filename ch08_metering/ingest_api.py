"""`POST /v1/usage/events`: the ingest API other services report usage to.

Chapter 8, "Idempotent event collection". One event or a batch of up to
100 is answered with 202 and a status per event: accepted, duplicate
(with the time of the original acceptance, so a retrying sender knows
its first attempt counted) or rejected with the reason. The body is
parsed once, here, into typed events; a batch is all-or-nothing only
against the database: if the ledger is busy, nothing is written and the
answer is 503 with Retry-After, so the sender retries the whole batch.
A customer's key may report only that customer's usage, and not under
the service's own sources; a service key (`METERING_SERVICE_KEYS`) may
report anyone's, as metering services do. The body must be JSON
(`application/json` or CloudEvents' own types), and is read no further
than its limit and no longer than its timeout: a sender cannot make the
server hold more than 1 MiB of it, nor hold the connection by sending
it slowly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
)
from starlette.requests import ClientDisconnect

from ch04_streaming.auth import ApiKeys, authorization_key
from ch08_metering.accounts import Accounts
from ch08_metering.events import Rejected, UsageEvent, parse_event
from ch08_metering.ledger import (
    Accepted,
    Duplicate,
    Ledger,
    LedgerBusyError,
    Outcome,
)
from ch08_metering.metering import SERVICE_SOURCES

log = logging.getLogger("ch08_metering")

MAX_BATCH = 100
MAX_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT_S = 30.0  # a whole 1 MiB body needs only 35 KB/s
JSON_TYPES = ("application/json", "application/cloudevents+json",
              "application/cloudevents-batch+json")


@dataclass(frozen=True)
class IngestMetrics:
    registry: CollectorRegistry
    events: Counter

    @classmethod
    def create(cls) -> IngestMetrics:
        registry = CollectorRegistry()
        events = Counter("usage_events", "Usage events by outcome",
                         ["status"], registry=registry)
        return cls(registry, events)


def error(status: int, reason: str,
          headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"type": "Error", "status": status,
                         "reason": reason}, status, headers)


def status_of(outcome: Outcome) -> dict[str, object]:
    if isinstance(outcome, Accepted | Duplicate):
        status = "accepted" if isinstance(outcome, Accepted) else "duplicate"
        at = datetime.fromtimestamp(outcome.accepted_at_ms / 1000, UTC)
        return {"id": outcome.id, "status": status,
                "accepted_at": at.isoformat()}
    return {"id": outcome.id, "status": "rejected", "reason": outcome.reason}


def is_json(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() in JSON_TYPES


def peer(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "unknown"


async def read_body(request: Request, limit: int,
                    timeout_s: float) -> bytes | None:
    """The body, read no further than `limit` bytes; None past it.

    TimeoutError if it is not all there within `timeout_s`: a deadline
    for the whole body, which a byte a second cannot put off.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async with asyncio.timeout(timeout_s):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


async def receive_batch(request: Request,
                        timeout_s: float) -> list[object] | Response:
    """The raw events of a request, or the answer that refuses it."""
    if not is_json(request.headers.get("content-type", "")):
        return error(415, "send the events as application/json or"
                     " application/cloudevents(-batch)+json")
    try:
        body = await read_body(request, MAX_BODY_BYTES, timeout_s)
    except ClientDisconnect:  # the sender left: nobody to answer
        log.info("event=client_left part=body client=%s", peer(request))
        return Response(status_code=400)
    except TimeoutError:  # a slow client, not a fault of the server
        log.info("event=request_timeout part=body client=%s",
                 peer(request))
        return error(408, f"body not received within {timeout_s:g} s",
                     {"Connection": "close"})  # the rest may still come
    if body is None:
        return error(413, f"body over {MAX_BODY_BYTES} bytes")
    batch = parse_body(body)
    return error(400, batch) if isinstance(batch, str) else batch


def parse_body(body: bytes) -> list[object] | str:
    """The events of a request body, or why there are none."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "body is not valid JSON"
    except RecursionError:
        return "body is nested too deeply"
    batch = parsed if isinstance(parsed, list) else [parsed]
    if not batch:
        return "empty batch"
    if len(batch) > MAX_BATCH:
        return f"batch of {len(batch)} events; at most {MAX_BATCH}"
    return batch


def reportable(event: UsageEvent | Rejected,
               customer: str | None) -> UsageEvent | Rejected:
    """A customer's key cannot bill another customer, nor report under
    the service's own sources; a service key (no customer) can."""
    if not isinstance(event, UsageEvent) or customer is None:
        return event
    if event.subject != customer:
        return Rejected(event.id, f"a key of {customer!r} cannot report"
                        " another customer's usage")
    if event.source.startswith(SERVICE_SOURCES):
        return Rejected(event.id, f"source {event.source!r} is the"
                        " service's own: only a service key may report"
                        " under it")
    return event


def create_ingest_app(ledger: Ledger, accounts: Accounts, keys: ApiKeys,
                      clock: Callable[[], float],
                      service_keys: ApiKeys | None = None,
                      body_timeout_s: float = BODY_TIMEOUT_S) -> FastAPI:
    app = FastAPI(title="Usage ingest", docs_url=None, redoc_url=None)
    metrics = IngestMetrics.create()
    services = service_keys or ApiKeys(())

    def reporter(key: str | None) -> str | Response | None:
        """Whose usage the key may report: a customer, or None (any)."""
        if services.verify(key):
            return None
        if key is None or not keys.verify(key):
            return error(401, "missing or invalid API key")
        customer = accounts.customer_for_key(key)
        if customer is None:
            return error(403, "no billing account for this API key")
        return customer.id

    @app.post("/v1/usage/events", status_code=202)
    async def ingest(request: Request) -> Response:
        only = reporter(authorization_key(
            request.headers.get("authorization", "")))
        if isinstance(only, Response):
            return only
        batch = await receive_batch(request, body_timeout_s)
        if isinstance(batch, Response):
            return batch
        now = clock()
        parsed = [reportable(parse_event(raw, accounts.customers,
                                         datetime.fromtimestamp(now, UTC)),
                             only)
                  for raw in batch]
        valid = [e for e in parsed if isinstance(e, UsageEvent)]
        try:
            written = iter(await asyncio.to_thread(
                ledger.ingest, valid, round(now * 1000)))
        except LedgerBusyError:
            return error(503, "ledger busy; nothing was written",
                         {"Retry-After": "1"})
        results = [status_of(e if isinstance(e, Rejected) else next(written))
                   for e in parsed]
        for result in results:
            metrics.events.labels(result["status"]).inc()
        return JSONResponse({"type": "IngestResult", "results": results},
                            202)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def exposition() -> Response:
        return Response(generate_latest(metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    return app
