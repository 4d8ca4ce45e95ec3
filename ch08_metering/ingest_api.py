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
it slowly. OpenMeter's clients send to `POST /api/v1/events`
(`openmeter.py`): the same keys, limits, validation and ledger,
answered as OpenMeter answers, 204 when every event is recorded (or
already was), else a problem and nothing written; each path's
`Contract` holds what differs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    LedgerConflictError,
    Outcome,
)
from ch08_metering.metering import SERVICE_SOURCES
from ch08_metering.openmeter import (
    OPENMETER_PATH,
    SHAPES,
    Shape,
    as_usage_event,
    problem,
)

log = logging.getLogger("ch08_metering")

MAX_BATCH = 100
MAX_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT_S = 30.0  # a whole 1 MiB body needs only 35 KB/s
JSON_TYPES = ("application/json", "application/cloudevents+json",
              "application/cloudevents-batch+json")
Refusal = Callable[[int, str, dict[str, str] | None], Response]


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


@dataclass(frozen=True)
class Contract:
    """What one path of the ingest API takes and how it refuses; the
    keys, limits, validation and ledger are the same for every path."""

    shapes: Mapping[str, Shape]  # media type -> what its body holds
    wrong_type: int  # the status for any other media type
    refuse: Refusal
    translate: Callable[[object], object | Rejected]  # into our event


def as_it_is(raw: object) -> object:
    return raw


USAGE = Contract(dict.fromkeys(JSON_TYPES, "either"), 415, error,
                 as_it_is)
OPENMETER = Contract(SHAPES, 400, problem, as_usage_event)


def status_of(outcome: Outcome) -> dict[str, object]:
    if isinstance(outcome, Accepted | Duplicate):
        status = "accepted" if isinstance(outcome, Accepted) else "duplicate"
        at = datetime.fromtimestamp(outcome.accepted_at_ms / 1000, UTC)
        return {"id": outcome.id, "status": status,
                "accepted_at": at.isoformat()}
    return {"id": outcome.id, "status": "rejected", "reason": outcome.reason}


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


async def receive_batch(request: Request, timeout_s: float,
                        contract: Contract) -> list[object] | Response:
    """The raw events of a request, or the answer that refuses it."""
    refuse = contract.refuse
    given = request.headers.get("content-type", "")
    shape = contract.shapes.get(given.split(";")[0].strip().lower())
    if shape is None:
        return refuse(contract.wrong_type, f"invalid content type:"
                      f" {given[:100] or 'none'}; send the events as"
                      f" {', '.join(contract.shapes)}", None)
    try:
        body = await read_body(request, MAX_BODY_BYTES, timeout_s)
    except ClientDisconnect:  # the sender left: nobody to answer
        log.info("event=client_left part=body client=%s", peer(request))
        return Response(status_code=400)
    except TimeoutError:  # a slow client, not a fault of the server
        log.info("event=request_timeout part=body client=%s",
                 peer(request))
        return refuse(408, f"body not received within {timeout_s:g} s",
                      {"Connection": "close"})  # the rest may still come
    if body is None:
        return refuse(413, f"body over {MAX_BODY_BYTES} bytes", None)
    batch = parse_body(body, shape)
    return refuse(400, batch, None) if isinstance(batch, str) else batch


def parse_body(body: bytes, shape: Shape = "either") -> list[object] | str:
    """The events of a request body, or why there are none."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "body is not valid JSON"
    except RecursionError:
        return "body is nested too deeply"
    if shape == "one" and isinstance(parsed, list):
        return "body is a list; its content type holds one event"
    if shape == "many" and not isinstance(parsed, list):
        return "body is not a list; its content type holds a list"
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

    def reporter(key: str | None,
                 refuse: Refusal) -> str | Response | None:
        """Whose usage the key may report: a customer, or None (any)."""
        if services.verify(key):
            return None
        if key is None or not keys.verify(key):
            return refuse(401, "missing or invalid API key", None)
        customer = accounts.customer_for_key(key)
        if customer is None:
            return refuse(403, "no billing account for this API key", None)
        return customer.id

    async def received(request: Request, contract: Contract
                       ) -> tuple[list[UsageEvent | Rejected], int] | Response:
        """The request's events, each judged alone, and the time they
        arrived (ms); or the answer that refuses the whole request."""
        only = reporter(authorization_key(
            request.headers.get("authorization", "")), contract.refuse)
        if isinstance(only, Response):
            return only
        batch = await receive_batch(request, body_timeout_s, contract)
        if isinstance(batch, Response):
            return batch
        now = clock()
        at = datetime.fromtimestamp(now, UTC)

        def judge(raw: object) -> UsageEvent | Rejected:
            event = contract.translate(raw)
            if isinstance(event, Rejected):
                return event
            return reportable(parse_event(event, accounts.customers, at),
                              only)

        return [judge(raw) for raw in batch], round(now * 1000)

    async def record(events: list[UsageEvent], now_ms: int,
                     contract: Contract,
                     whole: bool = False) -> list[Outcome] | Response:
        """Each event's outcome in the ledger, or 503 if it is busy.
        Taken `whole`, a rejected outcome means none was written."""
        try:
            return await asyncio.to_thread(ledger.ingest, events, now_ms,
                                           whole=whole)
        except LedgerConflictError as conflict:
            return conflict.outcomes
        except LedgerBusyError:
            return contract.refuse(503, "ledger busy; nothing was written",
                                   {"Retry-After": "1"})

    def count(outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            metrics.events.labels(status_of(outcome)["status"]).inc()

    @app.post("/v1/usage/events", status_code=202)
    async def ingest(request: Request) -> Response:
        events = await received(request, USAGE)
        if isinstance(events, Response):
            return events
        parsed, now_ms = events
        written = await record(
            [e for e in parsed if isinstance(e, UsageEvent)], now_ms, USAGE)
        if isinstance(written, Response):
            return written
        outcomes = iter(written)
        answers = [e if isinstance(e, Rejected) else next(outcomes)
                   for e in parsed]
        count(answers)
        return JSONResponse({"type": "IngestResult",
                             "results": [status_of(a) for a in answers]},
                            202)

    @app.post(OPENMETER_PATH, status_code=204)
    async def ingest_openmeter(request: Request) -> Response:
        """OpenMeter's contract: every event recorded (or already
        there), 204 and no body; else 400, and none of them written."""
        events = await received(request, OPENMETER)
        if isinstance(events, Response):
            return events
        parsed, now_ms = events
        valid = [e for e in parsed if isinstance(e, UsageEvent)]
        judged: Sequence[UsageEvent | Outcome] = parsed
        if len(valid) == len(parsed):
            written = await record(valid, now_ms, OPENMETER, whole=True)
            if isinstance(written, Response):
                return written
            judged = written
        rejected = [(n, e) for n, e in enumerate(judged)
                    if isinstance(e, Rejected)]
        if not rejected:
            count(e for e in judged if not isinstance(e, UsageEvent))
            return Response(status_code=204)
        count(e for _, e in rejected)
        return problem(400, f"{len(rejected)} of {len(judged)} events"
                       " refused; none of the request's events was"
                       " recorded", None, {"rejected": [
                           {"index": n, "id": e.id, "reason": e.reason}
                           for n, e in rejected]})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def exposition() -> Response:
        return Response(generate_latest(metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    return app
