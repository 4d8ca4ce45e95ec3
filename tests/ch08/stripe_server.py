"""A Stripe-compatible billing-meter server that the real stripe SDK talks to.

It speaks the slice of Stripe that a usage-metering worker needs: v1
meters (create, list, deactivate), v1 meter events, and the v2 meter
event session and stream, and the billing objects that turn metered
usage into an invoice (products, metered prices with
`unit_amount_decimal`, customers, subscriptions, and invoice previews
summing each meter's events over the subscription's period), with
Stripe's error shapes, the
`Stripe-Should-Retry` header, idempotency keys (a key's first answer,
a 500 raised inside the endpoint included, is replayed for 24 hours),
the identifier and timestamp rules, a token-bucket rate limit, and
deterministic fault injection (429, 500, or a hold past the client's
timeout, committed or not). As on Stripe, an event for an unknown meter
or customer is accepted and its problem reported later (an
`ErrorReport`, what `v1.billing.meter.error_report_triggered` carries).
Its routes (`ROUTES`) are the official SDK's calls, and its answers
have every field the SDK types as always present
(`test_stripe_sdk_types.py`). State lives in this process behind a
lock, so a worker in another process can restart while the test keeps
counting. Its own choices:
identifiers stay unique for the state's lifetime (Stripe: at least
24 h); values are whole numbers >= 0; 4xx answers are not saved under
their idempotency key.

    python -m tests.ch08.stripe_server --port 12111
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from types import FrameType
from typing import Any, Literal
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Json = dict[str, Any]
Form = dict[str, str | dict[str, str]]
FaultKind = Literal["429", "500", "timeout"]

METERS_PATH = "/v1/billing/meters"
EVENTS_PATH = "/v1/billing/meter_events"
SESSION_PATH = "/v2/billing/meter_event_session"
STREAM_PATH = "/v2/billing/meter_event_stream"
INGEST_PATHS = frozenset({EVENTS_PATH, STREAM_PATH})
MAX_PAST_S = 35 * 86_400
MAX_FUTURE_S = 5 * 60
SESSION_TTL_S = 15 * 60
MAX_STREAM_EVENTS = 100
MAX_IDENTIFIER = 100
MAX_VALUE_DIGITS = 15
KEY_TTL_S = 24 * 3600  # how long Stripe keeps an idempotency key's answer
FORMULAS = frozenset({"count", "sum", "last"})
METER_PARAMS = frozenset({"display_name", "event_name", "default_aggregation",
                          "customer_mapping", "value_settings",
                          "event_time_window", "expand"})
EVENT_PARAMS = frozenset({"event_name", "payload", "identifier", "timestamp",
                          "expand"})
DUPLICATE = "An event already exists with identifier {}."
DUPLICATE_REPORT = "duplicate_identifier"
WHOLE = re.compile(r"[0-9]+")
NESTED = re.compile(r"([^\[\]]+)\[([^\[\]]+)\]")
DEACTIVATE_PATH = "/v1/billing/meters/{id}/deactivate"
PRODUCTS_PATH = "/v1/products"
PRICES_PATH = "/v1/prices"
CUSTOMERS_PATH = "/v1/customers"
SUBSCRIPTIONS_PATH = "/v1/subscriptions"
PREVIEW_PATH = "/v1/invoices/create_preview"
CUSTOMER_PATH = "/v1/customers/{customer}"
ITEM_PRICE = re.compile(r"items\[([0-9]+)\]\[price\]")
DECIMAL_CENTS = re.compile(r"[0-9]+(\.[0-9]{1,12})?")
PRODUCT_PARAMS = frozenset({"name", "metadata", "expand"})
PRICE_PARAMS = frozenset({"currency", "product", "unit_amount",
                          "unit_amount_decimal", "recurring",
                          "billing_scheme", "metadata", "nickname",
                          "expand"})
CUSTOMER_PARAMS = frozenset({"name", "email", "metadata", "expand"})
SUBSCRIPTION_PARAMS = frozenset({"customer", "backdate_start_date",
                                 "billing_cycle_anchor",
                                 "proration_behavior", "metadata",
                                 "expand"})
PREVIEW_PARAMS = frozenset({"customer", "subscription", "expand"})
NO_AUTOMATIC_TAX = {"enabled": False, "liability": None,
                    "disabled_reason": None}


@dataclass(frozen=True)
class Meter:
    id: str
    display_name: str
    event_name: str
    formula: str
    customer_key: str
    value_key: str
    created: int
    status: str = "active"
    deactivated_at: int | None = None

    def to_json(self) -> Json:
        return {
            "id": self.id, "object": "billing.meter",
            "created": self.created, "updated": self.created,
            "customer_mapping": {"event_payload_key": self.customer_key,
                                 "type": "by_id"},
            "default_aggregation": {"formula": self.formula},
            "display_name": self.display_name,
            "event_name": self.event_name, "event_time_window": None,
            "livemode": False, "status": self.status,
            "status_transitions": {"deactivated_at": self.deactivated_at},
            "value_settings": {"event_payload_key": self.value_key},
        }


@dataclass(frozen=True)
class RecordedEvent:
    event_name: str
    customer: str
    value: int
    identifier: str
    timestamp: int
    api_version: str | None


@dataclass(frozen=True)
class ErrorReport:
    """An event Stripe accepted and then refused (any v2 problem; on v1
    an unknown meter or customer), as Stripe would announce it in
    `v1.billing.meter.error_report_triggered`."""

    code: str
    message: str
    event_name: str
    identifier: str


@dataclass(frozen=True)
class RequestLog:
    method: str
    path: str
    status: int
    body: bytes = b""  # as received
    answer: Json | None = None  # the JSON answered
    idempotency_key: str | None = None
    query: str = ""  # as received, without the `?`


@dataclass(frozen=True)
class RunningStripeServer:
    url: str
    state: StripeState


@dataclass
class _Fault:
    kind: FaultKind
    paths: frozenset[str]
    remaining: int | None
    until: float | None
    record: bool
    hold_s: float
    saved: bool = False  # a 500 from inside the endpoint: kept by key


@dataclass(frozen=True)
class _Reply:
    status: int
    body: Json
    headers: dict[str, str]


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    body: bytes
    query: dict[str, str]
    api_version: str | None


class _ApiError(Exception):
    def __init__(self, status: int, message: str, *,
                 kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None,
                 should_retry: bool | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.code, self.param, self.should_retry = code, param, should_retry

    def reply(self) -> _Reply:
        error = {"type": self.kind, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        headers = {} if self.should_retry is None else {
            "Stripe-Should-Retry": str(self.should_retry).lower()}
        return _Reply(self.status, {"error": error}, headers)


class _ReportedLaterError(_ApiError):
    """A problem Stripe finds after it accepted the event: reported."""


def _invalid(message: str, code: str | None = None,
             param: str | None = None) -> _ApiError:
    return _ApiError(400, message, code=code, param=param)


def _later(message: str, code: str, param: str) -> _ReportedLaterError:
    return _ReportedLaterError(400, message, code=code, param=param)


def _rate_limited(v2: bool) -> _ApiError:
    # No Stripe-Should-Retry: Stripe's SDKs retry only lock-timeout 429s,
    # so a rate-limited caller must back off by itself.
    return _ApiError(429, "Too many requests hit the API too quickly.",
                     kind="rate_limit" if v2 else "rate_limit_error",
                     code="rate_limit")


def _server_error() -> _ApiError:
    # No Stripe-Should-Retry, so the SDK retries it (status >= 500); real
    # Stripe may say false when its idempotency layer saved the 500.
    return _ApiError(500, "An unknown error occurred on Stripe's end.",
                     kind="api_error")


def rfc3339(epoch: float) -> str:
    """Stripe v2's timestamp format: 2026-11-20T12:00:00.000Z."""
    stamp = datetime.fromtimestamp(epoch, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.capacity, self.tokens = rate, burst, burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity,
                          self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class StripeState:
    """Meters, events and controls of one test server; thread-safe."""

    def __init__(self, *, api_key: str | None = None,
                 customers: Iterable[str] | None = None,
                 rate_limit: float = 1000.0, burst: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`api_key` None accepts any `sk_test_` key; `customers` None
        accepts any customer id; `clock` is the server's wall clock."""
        self._api_key = api_key
        self._customers = None if customers is None else frozenset(customers)
        self._bucket = _TokenBucket(
            rate_limit, burst if burst is not None else max(1, rate_limit))
        self._clock = clock
        self._offset = 0.0
        self._changed = threading.Condition(threading.RLock())
        self._released = threading.Event()
        self._meters: list[Meter] = []
        self._events: list[RecordedEvent] = []
        self._identifiers: set[str] = set()
        self._reports: list[ErrorReport] = []
        self._requests: list[RequestLog] = []
        self._sessions: dict[str, float] = {}
        self._faults: list[_Fault] = []
        self._replays: dict[str, tuple[str, _Reply, float]] = {}
        self._billing = _Billing()

    # -- controls -------------------------------------------------------
    def now(self) -> float:
        with self._changed:
            return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the server's clock (sessions, timestamp window)."""
        with self._changed:
            self._offset += seconds

    def inject(self, kind: FaultKind, count: int = 1, *,
               record: bool = False, hold_s: float = 10.0,
               saved: bool = False,
               paths: Collection[str] = INGEST_PATHS) -> None:
        """Fail the next `count` requests to `paths`. A "timeout" holds
        the request `hold_s` (past the client's timeout), after running
        it when `record` is true: the commit whose answer got lost. A
        "500" that is `saved` happened inside the endpoint: Stripe saves
        it under the request's idempotency key and replays it to every
        request with that key for 24 hours (unsaved: a failure before
        the endpoint ran, which a retry with the key gets past)."""
        if record and kind != "timeout":
            raise ValueError("only a timeout can record its request")
        if saved and kind != "500":
            raise ValueError("only a 500 is saved under its key")
        with self._changed:
            self._faults.append(_Fault(kind, frozenset(paths), count, None,
                                       record, hold_s, saved))

    def fail_for(self, seconds: float, kind: FaultKind = "500", *,
                 hold_s: float = 10.0,
                 paths: Collection[str] = INGEST_PATHS) -> None:
        """Fail every request to `paths` for `seconds` of server clock."""
        with self._changed:
            self._faults.append(_Fault(kind, frozenset(paths), None,
                                       self.now() + seconds, False, hold_s))

    def wait_until(self, predicate: Callable[[StripeState], bool],
                   timeout: float) -> bool:
        """Block until `predicate(self)` holds; False after `timeout`."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    # -- inspection -----------------------------------------------------
    @property
    def meters(self) -> list[Meter]:
        with self._changed:
            return list(self._meters)

    @property
    def events(self) -> list[RecordedEvent]:
        with self._changed:
            return list(self._events)

    @property
    def error_reports(self) -> list[ErrorReport]:
        with self._changed:
            return list(self._reports)

    @property
    def requests(self) -> list[RequestLog]:
        with self._changed:
            return list(self._requests)

    def totals(self) -> dict[tuple[str, str], int]:
        """Sum of accepted values per (customer, event_name)."""
        sums: dict[tuple[str, str], int] = {}
        for event in self.events:
            key = (event.customer, event.event_name)
            sums[key] = sums.get(key, 0) + event.value
        return sums

    # -- request pipeline -----------------------------------------------
    def _authorize(self, path: str, token: str) -> None:
        if path == STREAM_PATH:
            with self._changed:
                expires_at = self._sessions.get(token)
            if expires_at is None:
                raise _ApiError(401, "Invalid meter event session token.")
            if self.now() >= expires_at:
                raise _ApiError(
                    401, "The meter event session has expired; create "
                    "a new one.", kind="temporary_session_expired",
                    code="billing_meter_event_session_expired")
        elif not token:
            raise _ApiError(401, "You did not provide an API key.")
        elif (token != self._api_key if self._api_key is not None
              else not token.startswith("sk_test_")):
            raise _ApiError(401, f"Invalid API Key provided: {token[:8]}***")

    def _limit_rate(self, path: str) -> None:
        with self._changed:
            if not self._bucket.take():
                raise _rate_limited(path.startswith("/v2/"))

    def _admit(self, path: str) -> _Fault | None:
        """Take the first fault that matches `path`; raise a 429 now."""
        v2 = path.startswith("/v2/")
        with self._changed:
            now = self.now()
            self._faults = [f for f in self._faults if f.remaining != 0
                            and (f.until is None or now < f.until)]
            fault = next((f for f in self._faults if path in f.paths), None)
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
        if fault.kind == "429":
            raise _rate_limited(v2)
        return fault

    def _replayed(self, call: _Call, key: str | None) -> _Reply | None:
        """The answer saved under `key` in the last 24 hours, if any."""
        if key is None:
            return None
        with self._changed:
            saved = self._replays.get(key)
            if saved is None or self.now() - saved[2] >= KEY_TTL_S:
                return None
            seen, reply, _ = saved
            if seen != _fingerprint(call):
                return _ApiError(
                    400, "Keys for idempotent requests can only be "
                    f"used with the same parameters: '{key}'.",
                    kind="idempotency_error").reply()
            return replace(reply, headers={**reply.headers,
                                           "Idempotent-Replayed": "true"})

    def _save(self, call: _Call, key: str | None, reply: _Reply) -> None:
        if key is not None:
            with self._changed:
                self._replays[key] = (_fingerprint(call), reply, self.now())

    def _execute(self, call: _Call, key: str | None) -> _Reply:
        """Run the call once per idempotency key; replay its answer."""
        with self._changed:
            replayed = self._replayed(call, key)
            if replayed is not None:
                return replayed
            try:
                reply = _Reply(200, self._handle(call), {})
            except _ApiError as error:
                return error.reply()  # a refusal is not saved
            self._save(call, key, reply)
            self._changed.notify_all()
            return reply

    def _log(self, entry: RequestLog) -> None:
        with self._changed:
            self._requests.append(entry)
            self._changed.notify_all()

    def _handle(self, call: _Call) -> Json:
        for (method, template), handler in ROUTES.items():
            ids = re.fullmatch(_pattern(template), call.path)
            if method == call.method and ids:
                return handler(self, call, list(ids.groups()))
        raise _ApiError(404, f"Unrecognized request URL ({call.method}: "
                        f"{call.path}).")

    # -- v1 meters ------------------------------------------------------
    def _create_meter(self, form: Form) -> Json:
        _known(form, METER_PARAMS)
        event_name = _text(form, "event_name")
        formula = _mapping(form, "default_aggregation").get("formula")
        if formula not in FORMULAS:
            raise _invalid(f"Invalid formula {formula!r}: use count, sum "
                           "or last.", "parameter_invalid",
                           "default_aggregation[formula]")
        customer = _mapping(form, "customer_mapping", required=False)
        if customer.get("type", "by_id") != "by_id":
            raise _invalid("customer_mapping[type] must be by_id.",
                           "parameter_invalid", "customer_mapping[type]")
        if any(m.event_name == event_name and m.status == "active"
               for m in self._meters):
            raise _invalid(f"An active meter with event_name "
                           f"'{event_name}' already exists.",
                           "resource_already_exists", "event_name")
        value = _mapping(form, "value_settings", required=False)
        meter = Meter(
            id=f"mtr_test_{secrets.token_hex(12)}",
            display_name=_text(form, "display_name"), event_name=event_name,
            formula=formula,
            customer_key=customer.get("event_payload_key",
                                      "stripe_customer_id"),
            value_key=value.get("event_payload_key", "value"),
            created=int(self.now()))
        self._meters.append(meter)
        return meter.to_json()

    def _list_meters(self, query: dict[str, str]) -> Json:
        limit = _integer(query.get("limit", "10"), "limit")
        if not 1 <= limit <= 100:
            raise _invalid("limit must be between 1 and 100.",
                           "parameter_invalid_integer", "limit")
        status = query.get("status")
        newest_first = [m for m in reversed(self._meters)
                        if status is None or m.status == status]
        after = query.get("starting_after")
        if after is not None:
            ids = [m.id for m in newest_first]
            if after not in ids:
                raise _ApiError(404, f"No such billing meter: '{after}'",
                                code="resource_missing",
                                param="starting_after")
            newest_first = newest_first[ids.index(after) + 1:]
        return {"object": "list", "url": METERS_PATH,
                "has_more": len(newest_first) > limit,
                "data": [m.to_json() for m in newest_first[:limit]]}

    def _deactivate(self, meter_id: str) -> Json:
        for index, meter in enumerate(self._meters):
            if meter.id == meter_id:
                self._meters[index] = meter = replace(
                    meter, status="inactive", deactivated_at=int(self.now()))
                return meter.to_json()
        raise _ApiError(404, f"No such billing meter: '{meter_id}'",
                        code="resource_missing", param="id")


    # -- billing: products, prices, customers, subscriptions ------------
    def _create_product(self, form: Form) -> Json:
        _known(form, PRODUCT_PARAMS)
        created = int(self.now())
        product: Json = {"id": f"prod_test_{secrets.token_hex(7)}",
                         "object": "product", "active": True,
                         "created": created, "images": [],
                         "livemode": False, "marketing_features": [],
                         "metadata": _mapping(form, "metadata",
                                              required=False),
                         "name": _text(form, "name"), "type": "service",
                         "updated": created}
        self._billing.products[product["id"]] = product
        return product

    def _create_price(self, form: Form) -> Json:
        _known(form, PRICE_PARAMS)
        currency = _text(form, "currency").lower()
        product = _text(form, "product")
        if product not in self._billing.products:
            raise _missing("product", product, "product")
        if form.get("billing_scheme", "per_unit") != "per_unit":
            raise _invalid("Only billing_scheme=per_unit is served here.",
                           "parameter_invalid", "billing_scheme")
        recurring = _mapping(form, "recurring")
        price = {
            "id": f"price_test_{secrets.token_hex(7)}", "object": "price",
            "active": True, "billing_scheme": "per_unit",
            "created": int(self.now()), "currency": currency,
            "livemode": False, "lookup_key": None,
            "metadata": _mapping(form, "metadata", required=False),
            "nickname": form.get("nickname"), "product": product,
            "recurring": self._recurring(recurring),
            "tax_behavior": "unspecified", "tiers_mode": None,
            "transform_quantity": None, "type": "recurring",
            **_unit_amount(form)}
        self._billing.prices[price["id"]] = price
        return price

    def _recurring(self, recurring: dict[str, str]) -> Json:
        interval = recurring.get("interval")
        if interval not in {"day", "week", "month", "year"}:
            raise _invalid("recurring[interval] must be day, week, month "
                           "or year.", "parameter_invalid",
                           "recurring[interval]")
        usage_type = recurring.get("usage_type", "licensed")
        meter = recurring.get("meter")
        if usage_type == "metered" and not meter:
            raise _invalid("A meter is required when usage_type is "
                           "metered.", "parameter_missing",
                           "recurring[meter]")
        if meter and not any(m.id == meter for m in self._meters):
            raise _missing("billing meter", meter, "recurring[meter]")
        return {"interval": interval, "interval_count": 1, "meter": meter,
                "trial_period_days": None, "usage_type": usage_type}

    def _create_customer(self, form: Form) -> Json:
        _known(form, CUSTOMER_PARAMS)
        customer = _customer_json(f"cus_test_{secrets.token_hex(7)}",
                                  int(self.now()))
        customer.update({"name": form.get("name"),
                         "email": form.get("email"),
                         "metadata": _mapping(form, "metadata",
                                              required=False)})
        self._billing.customers[customer["id"]] = customer
        return customer

    def _customer(self, customer_id: str, param: str) -> Json:
        """A created customer, or one of the ids the state knows."""
        if customer_id in self._billing.customers:
            return self._billing.customers[customer_id]
        known = (customer_id.startswith("cus_") if self._customers is None
                 else customer_id in self._customers)
        if not known:
            raise _missing("customer", customer_id, param)
        return _customer_json(customer_id, int(self.now()))

    def _create_subscription(self, form: Form) -> Json:
        known = [k for k in form if not ITEM_PRICE.fullmatch(k)]
        _known({k: form[k] for k in known}, SUBSCRIPTION_PARAMS)
        customer = self._customer(_text(form, "customer"), "customer")["id"]
        start = _integer(str(form.get("backdate_start_date",
                                      int(self.now()))),
                         "backdate_start_date")
        end = (_integer(_text(form, "billing_cycle_anchor"),
                        "billing_cycle_anchor")
               if "billing_cycle_anchor" in form else start + 30 * 86_400)
        if not start <= self.now() < end:
            raise _invalid("backdate_start_date must be in the past and "
                           "billing_cycle_anchor in the future.",
                           "parameter_invalid", "billing_cycle_anchor")
        subscription_id = f"sub_test_{secrets.token_hex(7)}"
        items = [self._item(form, key, subscription_id, start, end)
                 for key in sorted(form, key=_item_index)
                 if ITEM_PRICE.fullmatch(key)]
        if not items:
            raise _invalid("Missing required param: items.",
                           "parameter_missing", "items")
        subscription = {
            "id": subscription_id, "object": "subscription",
            "automatic_tax": {**NO_AUTOMATIC_TAX},
            "billing_cycle_anchor": end,
            "billing_mode": {"type": "classic"}, "billing_schedules": [],
            "cancel_at_period_end": False,
            "collection_method": "charge_automatically",
            "created": int(self.now()),
            "currency": items[0]["price"]["currency"],
            "customer": customer, "discounts": [],
            "invoice_settings": {"account_tax_ids": None,
                                 "issuer": {"type": "self"}},
            "livemode": False,
            "metadata": _mapping(form, "metadata", required=False),
            "start_date": start, "status": "active",
            "items": {"object": "list", "data": items, "has_more": False,
                      "url": f"/v1/subscription_items?subscription="
                             f"{subscription_id}"}}
        self._billing.subscriptions[subscription_id] = subscription
        return subscription

    def _item(self, form: Form, key: str, subscription_id: str,
              start: int, end: int) -> Json:
        price_id = _text(form, key)
        price = self._billing.prices.get(price_id)
        if price is None:
            raise _missing("price", price_id, key)
        return {"id": f"si_test_{secrets.token_hex(7)}",
                "object": "subscription_item", "created": int(self.now()),
                "current_period_start": start, "current_period_end": end,
                "discounts": [], "metadata": {}, "plan": _plan(price),
                "price": price, "subscription": subscription_id}

    # -- billing: the invoice preview -----------------------------------
    def _preview(self, form: Form) -> Json:
        """The next invoice: each metered item's meter summed over its
        period for the customer, priced per unit, rounded to cents."""
        _known(form, PREVIEW_PARAMS)
        if "customer" not in form and "subscription" not in form:
            raise _invalid("Missing required param: customer or "
                           "subscription.", "parameter_missing", "customer")
        subscriptions = self._subscriptions_of(form)
        lines = [self._line(s, item) for s in subscriptions
                 for item in s["items"]["data"]]
        return _draft_invoice(f"upcoming_in_test_{secrets.token_hex(7)}",
                              subscriptions[0], lines, int(self.now()))

    def _subscriptions_of(self, form: Form) -> list[Json]:
        if "subscription" in form:
            wanted = _text(form, "subscription")
            subscription = self._billing.subscriptions.get(wanted)
            if subscription is None:
                raise _missing("subscription", wanted, "subscription")
            if form.get("customer", subscription["customer"]) != (
                    subscription["customer"]):
                raise _invalid("The subscription belongs to another "
                               "customer.", "parameter_invalid",
                               "subscription")
            return [subscription]
        customer = self._customer(_text(form, "customer"), "customer")["id"]
        found = [s for s in self._billing.subscriptions.values()
                 if s["customer"] == customer]
        if not found:
            raise _ApiError(404, f"No upcoming invoices for customer: "
                            f"{customer}", code="invoice_upcoming_none")
        return found

    def _line(self, subscription: Json, item: Json) -> Json:
        price = item["price"]
        start, end = item["current_period_start"], item["current_period_end"]
        quantity = self._usage(price["recurring"]["meter"],
                               subscription["customer"], start, end)
        unit = Decimal(price["unit_amount_decimal"])
        amount = int((unit * quantity).quantize(Decimal(1), ROUND_HALF_UP))
        product = self._billing.products[price["product"]]
        return {
            "id": f"il_tmp_{secrets.token_hex(7)}", "object": "line_item",
            "amount": amount, "currency": price["currency"],
            "description": f"{quantity} x {product['name']}",
            "discountable": True, "discounts": [],
            "livemode": False, "metadata": {},
            "parent": {"type": "subscription_item_details",
                       "subscription_item_details": {
                           "proration": False,
                           "subscription": subscription["id"],
                           "subscription_item": item["id"]}},
            "period": {"start": start, "end": end},
            "pricing": {"type": "price_details",
                        "price_details": {"price": price["id"],
                                          "product": product["id"]},
                        "unit_amount_decimal": price["unit_amount_decimal"]},
            "quantity": quantity, "subtotal": amount}

    def _usage(self, meter_id: str | None, customer: str, start: int,
               end: int) -> int:
        """The meter's aggregation of the customer's events in
        [start, end): sum (count events carry 1), or the last value."""
        meter = next((m for m in self._meters if m.id == meter_id), None)
        if meter is None:
            return 0
        values = [e.value for e in sorted(self._events,
                                          key=lambda e: e.timestamp)
                  if e.event_name == meter.event_name
                  and e.customer == customer and start <= e.timestamp < end]
        if meter.formula == "last":
            return values[-1] if values else 0
        return sum(values)

    # -- meter events (v1 and v2) ---------------------------------------
    def _create_event(self, form: Form, api_version: str | None) -> Json:
        _known(form, EVENT_PARAMS)
        timestamp = (_integer(_text(form, "timestamp"), "timestamp")
                     if "timestamp" in form else int(self.now()))
        identifier = (_text(form, "identifier") if "identifier" in form
                      else _new_identifier())
        payload = _mapping(form, "payload")
        event_name = _text(form, "event_name")
        try:
            self._accept(event_name, payload, identifier, timestamp,
                         api_version)
        except _ReportedLaterError as problem:  # accepted now, refused later
            self._report(problem, event_name, identifier)
        return {"object": "billing.meter_event", "created": int(self.now()),
                "event_name": event_name, "identifier": identifier,
                "livemode": False, "payload": payload,
                "timestamp": timestamp}

    def _report(self, error: _ApiError, event_name: str,
                identifier: str) -> None:
        # Stripe's v1 duplicate reply has no code; reports need one
        self._reports.append(ErrorReport(
            error.code or DUPLICATE_REPORT, error.message, event_name,
            identifier))

    def _create_session(self) -> Json:
        created = self.now()
        token = f"token_{secrets.token_hex(16)}"
        self._sessions[token] = created + SESSION_TTL_S
        return {"id": f"mes_test_{secrets.token_hex(12)}",
                "object": "v2.billing.meter_event_session",
                "authentication_token": token, "created": rfc3339(created),
                "expires_at": rfc3339(created + SESSION_TTL_S),
                "livemode": False}

    def _stream(self, body: bytes, api_version: str | None) -> Json:
        """Check the request's shape now, its events as Stripe does
        later: a refused event becomes an error report, not an error."""
        events = _stream_events(body)
        for event in events:
            timestamp = (int(self.now()) if event.timestamp is None
                         else event.timestamp)
            try:
                self._accept(event.name, event.payload, event.identifier,
                             timestamp, api_version)
            except _ApiError as error:
                self._report(error, event.name, event.identifier)
        return {}

    def _accept(self, event_name: str, payload: dict[str, str],
                identifier: str, timestamp: int,
                api_version: str | None) -> RecordedEvent:
        """Record the event, or raise: `_ReportedLaterError` for what Stripe
        finds only after it accepted the event (meter, customer)."""
        if len(identifier) > MAX_IDENTIFIER:
            raise _invalid(f"identifier is longer than {MAX_IDENTIFIER} "
                           "characters.", "identifier_too_long",
                           "identifier")
        if identifier in self._identifiers:
            raise _ApiError(400, DUPLICATE.format(identifier),
                            should_retry=False)
        self._check_window(timestamp)
        meter = self._meter_for(event_name)
        value = _value(meter, payload.get(meter.value_key))
        customer = self._customer_in(meter, payload)
        event = RecordedEvent(event_name, customer, value, identifier,
                              timestamp, api_version)
        self._identifiers.add(identifier)
        self._events.append(event)
        return event

    def _check_window(self, timestamp: int) -> None:
        now = self.now()
        if timestamp < now - MAX_PAST_S:
            raise _invalid("The timestamp must be within the past 35 "
                           "days.", "timestamp_too_far_in_past", "timestamp")
        if timestamp > now + MAX_FUTURE_S:
            raise _invalid("The timestamp must be at most 5 minutes in "
                           "the future.", "timestamp_in_future", "timestamp")

    def _customer_in(self, meter: Meter, payload: dict[str, str]) -> str:
        param = f"payload[{meter.customer_key}]"
        customer = payload.get(meter.customer_key)
        if not customer:
            raise _later(f"The event payload has no "
                         f"'{meter.customer_key}'.",
                         "meter_event_no_customer_defined", param)
        if self._customers is not None and customer not in self._customers:
            raise _later(f"No such customer: '{customer}'",
                         "meter_event_customer_not_found", param)
        return customer

    def _meter_for(self, event_name: str) -> Meter:
        named = [m for m in self._meters if m.event_name == event_name]
        for meter in named:
            if meter.status == "active":
                return meter
        if named:
            raise _later(f"The meter for '{event_name}' is inactive.",
                         "archived_meter", "event_name")
        raise _later(f"No active meter with event_name '{event_name}'.",
                     "no_meter", "event_name")


@dataclass
class _Billing:
    """Products, prices, customers and subscriptions, by id."""

    products: dict[str, Json] = field(default_factory=dict)
    prices: dict[str, Json] = field(default_factory=dict)
    customers: dict[str, Json] = field(default_factory=dict)
    subscriptions: dict[str, Json] = field(default_factory=dict)


StripeRoute = tuple[str, str]  # a method, a path as the SDK writes it
Handler = Callable[[StripeState, _Call, list[str]], Json]

# Every route served, by the method and path template of the stripe
# SDK's call; the handler gets the path's {ids} in order.
ROUTES: dict[StripeRoute, Handler] = {
    ("POST", METERS_PATH): lambda s, c, _: s._create_meter(_form(c.body)),
    ("GET", METERS_PATH): lambda s, c, _: s._list_meters(c.query),
    ("POST", DEACTIVATE_PATH): lambda s, c, ids: s._deactivate(ids[0]),
    ("POST", EVENTS_PATH):
        lambda s, c, _: s._create_event(_form(c.body), c.api_version),
    ("POST", SESSION_PATH): lambda s, c, _: s._create_session(),
    ("POST", STREAM_PATH): lambda s, c, _: s._stream(c.body, c.api_version),
    ("POST", PRODUCTS_PATH):
        lambda s, c, _: s._create_product(_form(c.body)),
    ("POST", PRICES_PATH): lambda s, c, _: s._create_price(_form(c.body)),
    ("POST", CUSTOMERS_PATH):
        lambda s, c, _: s._create_customer(_form(c.body)),
    ("GET", CUSTOMER_PATH): lambda s, c, ids: s._customer(ids[0], "id"),
    ("POST", SUBSCRIPTIONS_PATH):
        lambda s, c, _: s._create_subscription(_form(c.body)),
    ("POST", PREVIEW_PATH): lambda s, c, _: s._preview(_form(c.body)),
}


def _pattern(template: str) -> str:
    """`/v1/customers/{customer}` -> `/v1/customers/([^/]+)`."""
    return re.sub(r"\\\{[a-z_]+\\\}", "([^/]+)", re.escape(template))


def route_of(method: str, path: str) -> StripeRoute | None:
    """The route a request takes, or None: Stripe's 404."""
    for route in ROUTES:
        if route[0] == method and re.fullmatch(_pattern(route[1]), path):
            return route
    return None


def _missing(kind: str, name: str, param: str) -> _ApiError:
    """Stripe's answer for an id it does not know: 404 from a GET of the
    object, 400 when a request names it as a parameter."""
    status = 404 if param == "id" else 400
    return _ApiError(status, f"No such {kind}: '{name}'",
                     code="resource_missing", param=param)


def _plan(price: Json) -> Json:
    """The plan Stripe still shows beside a subscription item's price."""
    recurring = price["recurring"]
    return {"id": price["id"], "object": "plan", "active": price["active"],
            "amount": price["unit_amount"],
            "amount_decimal": price["unit_amount_decimal"],
            "billing_scheme": price["billing_scheme"],
            "created": price["created"], "currency": price["currency"],
            "interval": recurring["interval"],
            "interval_count": recurring["interval_count"],
            "livemode": False, "metadata": price["metadata"],
            "meter": recurring["meter"], "nickname": price["nickname"],
            "product": price["product"], "tiers_mode": None,
            "transform_usage": None, "trial_period_days": None,
            "usage_type": recurring["usage_type"]}


def _draft_invoice(invoice_id: str, subscription: Json, lines: list[Json],
                   created: int) -> Json:
    """A draft invoice of the lines: nothing paid, no tax, no discount."""
    total = sum(line["amount"] for line in lines)
    return {
        "id": invoice_id, "object": "invoice",
        "amount_due": total, "amount_overpaid": 0, "amount_paid": 0,
        "amount_remaining": total, "amount_shipping": 0,
        "attempt_count": 0, "attempted": False,
        "automatic_tax": {**NO_AUTOMATIC_TAX},
        "collection_method": "charge_automatically", "created": created,
        "currency": subscription["currency"],
        "customer": subscription["customer"], "default_tax_rates": [],
        "discounts": [], "issuer": {"type": "self"}, "livemode": False,
        "lines": {"object": "list", "data": lines, "has_more": False,
                  "url": f"/v1/invoices/{invoice_id}/lines"},
        "parent": {"type": "subscription_details",
                   "subscription_details": {
                       "subscription": subscription["id"]}},
        "payment_settings": {"default_mandate": None,
                             "payment_method_options": None,
                             "payment_method_types": None},
        "period_start": subscription["start_date"],
        "period_end": subscription["billing_cycle_anchor"],
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0, "starting_balance": 0,
        "status": "draft",
        "status_transitions": {"finalized_at": None,
                               "marked_uncollectible_at": None,
                               "paid_at": None, "voided_at": None},
        "subtotal": total, "total": total}


def _customer_json(customer_id: str, created: int) -> Json:
    return {"id": customer_id, "object": "customer", "created": created,
            "email": None, "livemode": False, "metadata": {}, "name": None}


def _unit_amount(form: Form) -> Json:
    """`unit_amount` (whole cents) or `unit_amount_decimal` (cents with
    at most 12 decimals); Stripe answers both, the first null when the
    amount is not whole."""
    whole, decimal = form.get("unit_amount"), form.get("unit_amount_decimal")
    if (whole is None) == (decimal is None):
        raise _invalid("Give exactly one of unit_amount and "
                       "unit_amount_decimal.", "parameter_missing",
                       "unit_amount")
    if whole is not None:
        cents = _integer(str(whole), "unit_amount")
        return {"unit_amount": cents, "unit_amount_decimal": str(cents)}
    if not isinstance(decimal, str) or not DECIMAL_CENTS.fullmatch(decimal):
        raise _invalid(f"Invalid decimal: {decimal} (cents, at most 12 "
                       "decimal places)", "parameter_invalid",
                       "unit_amount_decimal")
    amount = Decimal(decimal)
    return {"unit_amount": int(amount) if amount == int(amount) else None,
            "unit_amount_decimal": decimal}


def _item_index(key: str) -> int:
    match = ITEM_PRICE.fullmatch(key)
    return int(match[1]) if match else -1


@dataclass(frozen=True)
class _StreamEvent:
    name: str
    payload: dict[str, str]
    identifier: str
    timestamp: int | None


def _stream_events(body: bytes) -> list[_StreamEvent]:
    try:
        document = json.loads(body or b"{}")
    except ValueError as error:
        raise _invalid(f"The body is not JSON: {error}") from None
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list) or not events:
        raise _invalid("events must be a non-empty list.",
                       "parameter_missing", "events")
    if len(events) > MAX_STREAM_EVENTS:
        raise _invalid(f"events holds {len(events)} events; at most "
                       f"{MAX_STREAM_EVENTS} are allowed per request.",
                       "parameter_invalid_array_length", "events")
    return [_stream_event(item, index) for index, item in enumerate(events)]


def _stream_event(item: object, index: int) -> _StreamEvent:
    where = f"events[{index}]"
    if not isinstance(item, dict):
        raise _invalid(f"{where} must be an object.", "parameter_invalid",
                       where)
    name, payload = item.get("event_name"), item.get("payload")
    identifier = item.get("identifier", _new_identifier())
    stamp = item.get("timestamp")
    if not isinstance(name, str) or not isinstance(identifier, str):
        raise _invalid(f"{where}: event_name and identifier are strings.",
                       "parameter_invalid", where)
    if not isinstance(payload, dict) or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool)
            for v in payload.values()):
        raise _invalid(f"{where}.payload must map keys to strings.",
                       "parameter_invalid", f"{where}.payload")
    return _StreamEvent(name, {str(k): str(v) for k, v in payload.items()},
                        identifier, None if stamp is None
                        else _parse_rfc3339(stamp, f"{where}.timestamp"))


def _parse_rfc3339(stamp: object, param: str) -> int:
    problem = _invalid(f"{param} must be an RFC 3339 time with a zone.",
                       "parameter_invalid", param)
    if not isinstance(stamp, str):
        raise problem
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        raise problem from None
    if parsed.tzinfo is None:
        raise problem
    return int(parsed.timestamp())


def _value(meter: Meter, raw: str | None) -> int:
    if raw is None and meter.formula == "count":
        return 1
    if raw is None or not WHOLE.fullmatch(raw):
        raise _invalid(f"The value in the event payload must be a whole "
                       f"number >= 0. Received {raw!r}.",
                       "meter_event_invalid_value",
                       f"payload[{meter.value_key}]")
    if len(raw.lstrip("0")) > MAX_VALUE_DIGITS:
        raise _invalid(f"The value in the event payload can have at most "
                       f"{MAX_VALUE_DIGITS} digits. Received {raw}.",
                       "meter_event_value_too_many_digits",
                       f"payload[{meter.value_key}]")
    return int(raw)


def _fingerprint(call: _Call) -> str:
    return hashlib.sha256(
        f"{call.method} {call.path} ".encode() + call.body).hexdigest()


def _new_identifier() -> str:
    return f"gen_{secrets.token_hex(12)}"


def _form(body: bytes) -> Form:
    """Stripe's form encoding, one level deep: `payload[value]=5`."""
    form: Form = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        if match := NESTED.fullmatch(key):
            nested = form.setdefault(match[1], {})
            if isinstance(nested, str):
                raise _invalid(f"{match[1]} is both a value and a hash.",
                               "parameter_invalid", match[1])
            nested[match[2]] = value
        else:
            form[key] = value
    return form


def _known(form: Form, allowed: frozenset[str]) -> None:
    for name in form:
        if name not in allowed:
            raise _invalid(f"Received unknown parameter: {name}",
                           "parameter_unknown", name)


def _text(form: Form, name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value:
        raise _invalid(f"Missing required param: {name}.",
                       "parameter_missing", name)
    return value


def _mapping(form: Form, name: str, *,
             required: bool = True) -> dict[str, str]:
    value = form.get(name)
    if isinstance(value, dict):
        return value
    if value is None and not required:
        return {}
    raise _invalid(f"Missing required param: {name}.", "parameter_missing",
                   name)


def _integer(text: str, param: str) -> int:
    if not re.fullmatch(r"-?[0-9]+", text):
        raise _invalid(f"Invalid integer: {text}",
                       "parameter_invalid_integer", param)
    return int(text)


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _respond(state: StripeState, request: Request) -> _Reply:
    path = request.url.path
    call = _Call(request.method, path, await request.body(),
                 dict(request.query_params),
                 request.headers.get("stripe-version"))
    key = _idempotency_key(request)
    try:
        state._authorize(path, _bearer(request))
        state._limit_rate(path)  # before the key: a 429 is never saved
        replayed = state._replayed(call, key)
        if replayed is not None:
            return replayed
        fault = state._admit(path)
    except _ApiError as error:
        return error.reply()
    if fault is None:
        return state._execute(call, key)
    if fault.kind == "500":
        reply = _server_error().reply()
        if fault.saved:
            state._save(call, key, reply)
        return reply
    reply = (state._execute(call, key) if fault.record
             else _server_error().reply())
    await asyncio.to_thread(state._released.wait, fault.hold_s)
    return reply


def _idempotency_key(request: Request) -> str | None:
    if request.method != "POST":
        return None
    return request.headers.get("idempotency-key")


def build_app(state: StripeState) -> Starlette:
    """The ASGI app serving both Stripe hosts (api, meter_events)."""
    async def endpoint(request: Request) -> Response:
        reply = await _respond(state, request)
        state._log(RequestLog(request.method, request.url.path,
                              reply.status, await request.body(), reply.body,
                              _idempotency_key(request), request.url.query))
        headers = {"Request-Id": f"req_{secrets.token_hex(7)}",
                   **reply.headers}
        return JSONResponse(reply.body, reply.status, headers)

    return Starlette(routes=[Route("/{path:path}", endpoint,
                                   methods=["GET", "POST", "DELETE"])])


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config,
                 ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None,
                      ) -> None:
        await super().startup(sockets)
        self._ready.set()


@contextmanager
def running_stripe_server(state: StripeState | None = None, *,
                          port: int = 0, startup_timeout_s: float = 10.0,
                          ) -> Iterator[RunningStripeServer]:
    """Serve `state` on 127.0.0.1 from a background thread; stopping
    releases held requests and takes at most a few seconds."""
    state = state if state is not None else StripeState()
    state._released.clear()
    config = uvicorn.Config(
        build_app(state), host="127.0.0.1", port=port, log_level="warning",
        access_log=False, lifespan="off", ws="none",
        timeout_graceful_shutdown=2)
    ready = threading.Event()
    server = _Server(config, ready)
    thread = threading.Thread(target=server.run, name="stripe-server",
                              daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not ready.wait(0.05):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Stripe test server did not start")
        bound = int(server.servers[0].sockets[0].getsockname()[1])
        yield RunningStripeServer(f"http://127.0.0.1:{bound}", state)
    finally:
        state._released.set()
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.ch08.stripe_server",
        description="Serve a Stripe-compatible billing-meter API.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", help="the one accepted secret key "
                        "(default: any sk_test_ key)")
    parser.add_argument("--customer", action="append",
                        help="a known customer id (repeat; default: any)")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    state = StripeState(api_key=args.api_key, customers=args.customer)
    with running_stripe_server(state, port=args.port) as running:
        print(f"listening on {running.url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
