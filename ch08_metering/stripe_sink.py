"""Sending meter events to Stripe, and what each answer means.

Chapter 8, "Stripe Meters API integration". The official SDK does the
HTTP: with `max_network_retries` it retries connection errors, timeouts
and 5xx itself, with the same idempotency key, which we set to the
event's identifier. What is left is to map its errors to outcomes: a
duplicate identifier means Stripe already has the event (delivered), a
429 means slow down, a 5xx or a timeout means try later, and any other
4xx will never succeed, so it goes to a human. `StripeSink` sends one
event per call (v1); `StripeStreamSink` sends up to 100 per call on the
high-throughput v2 stream, with a session token it renews before it
expires; `DryRunSink` only writes down the calls it would make.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import stripe
from stripe import StripeClient
from stripe.params.billing import MeterCreateParams, MeterEventCreateParams
from stripe.params.v2.billing import MeterEventStreamCreateParamsEvent

DUPLICATE = "already exists with identifier"  # Stripe's 400 message
SESSION_RENEW_S = 14 * 60  # tokens live 15 minutes
STREAM_BATCH = 100  # events per v2 request


@dataclass(frozen=True)
class MeterEvent:
    """One outbox row, as Stripe receives it."""

    identifier: str
    event_name: str
    stripe_customer_id: str
    value: int
    timestamp_s: int


@dataclass(frozen=True)
class Delivered:
    duplicate: bool = False  # Stripe had this identifier already


@dataclass(frozen=True)
class RetryLater:
    reason: str
    rate_limited: bool = False


@dataclass(frozen=True)
class Refused:
    """Stripe's answer will not change: a human must look."""

    reason: str


@dataclass(frozen=True)
class Recorded:
    """Dry run: written down, not sent, so the row stays due."""


SendOutcome = Delivered | RetryLater | Refused | Recorded


class StripeUnavailableError(Exception):
    """No event can be sent now (bad key, no permission): not the row's
    fault, so it costs no attempt."""


class MeterSink(Protocol):
    max_batch: int

    def ensure_meters(self, event_names: Sequence[str]) -> dict[str, str]:
        """Meter id by event name, creating the missing meters."""
        ...

    def send(self, events: Sequence[MeterEvent]) -> SendOutcome:
        """Send up to `max_batch` events; one outcome for all."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class StripeSettings:
    api_key: str
    api_base: str | None = None  # e.g. a test server
    meter_events_base: str | None = None
    max_network_retries: int = 2
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StripeSettings | None:
        """None without STRIPE_API_KEY: there is nothing to send with."""
        if not env.get("STRIPE_API_KEY"):
            return None
        return cls(env["STRIPE_API_KEY"], env.get("STRIPE_API_BASE"),
                   env.get("STRIPE_METER_EVENTS_API_BASE"))


def stripe_client(settings: StripeSettings, api_key: str,
                  http_client: stripe.HTTPClient) -> StripeClient:
    """A client on `api_key`: the secret key, or a v2 session token."""
    return StripeClient(
        api_key,
        base_addresses={
            "api": settings.api_base or stripe.DEFAULT_API_BASE,
            "meter_events": (settings.meter_events_base
                             or stripe.DEFAULT_METER_EVENTS_API_BASE)},
        max_network_retries=settings.max_network_retries,
        http_client=http_client)


def meter_params(event_name: str) -> MeterCreateParams:
    """A summing meter; customer and value under Stripe's default keys."""
    return {
        "display_name": f"Speech API {event_name}",
        "event_name": event_name,
        "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"type": "by_id",
                             "event_payload_key": "stripe_customer_id"},
        "value_settings": {"event_payload_key": "value"},
    }


# --8<-- [start:stripe_delivery]
def meter_event_params(event: MeterEvent) -> MeterEventCreateParams:
    return {
        "event_name": event.event_name,
        "payload": {"stripe_customer_id": event.stripe_customer_id,
                    "value": str(event.value)},  # whole numbers only
        "identifier": event.identifier,  # Stripe keeps one per identifier
        "timestamp": event.timestamp_s,  # event time: the minute's start
    }


def send_meter_event(client: StripeClient,
                     event: MeterEvent) -> SendOutcome:
    try:  # the SDK's own retries reuse this idempotency key
        client.v1.billing.meter_events.create(
            meter_event_params(event), {"idempotency_key": event.identifier})
    except stripe.StripeError as error:
        return outcome_of(error)
    return Delivered()


def outcome_of(error: stripe.StripeError) -> SendOutcome:
    status, message = error.http_status, error.user_message or repr(error)
    # 400 "An event already exists with identifier ...": sent before,
    # by an attempt that could not record it. Delivered, not an error.
    if status == 400 and DUPLICATE in message:
        return Delivered(duplicate=True)
    if isinstance(error, stripe.RateLimitError):
        return RetryLater(message, rate_limited=True)
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        raise StripeUnavailableError(message) from error  # no row's fault
    if status is None or status == 409 or status >= 500:
        return RetryLater(f"{status or 'no answer'}: {message}")
    return Refused(f"{status}: {message}")
# --8<-- [end:stripe_delivery]


class StripeSink:
    """v1: one meter event per call, answered synchronously.

    `pace` is called before every call to Stripe: the worker's throttle.
    """

    max_batch = 1

    def __init__(self, settings: StripeSettings,
                 pace: Callable[[], object]) -> None:
        self.settings = settings
        self.pace = pace
        self.http_client = stripe.RequestsClient(timeout=settings.timeout_s)
        self.client = stripe_client(settings, settings.api_key,
                                    self.http_client)

    def ensure_meters(self, event_names: Sequence[str]) -> dict[str, str]:
        """List the active meters, create only the missing ones."""
        meters = self.client.v1.billing.meters
        wanted = set(event_names)
        self.pace()
        found = {m.event_name: m.id for m in meters.list(
            {"status": "active", "limit": 100}).auto_paging_iter()
            if m.event_name in wanted}
        for name in sorted(wanted - found.keys()):
            self.pace()
            created = meters.create(meter_params(name),
                                    {"idempotency_key": f"meter-{name}"})
            found[name] = created.id
        return found

    def send(self, events: Sequence[MeterEvent]) -> SendOutcome:
        (event,) = events
        self.pace()
        return send_meter_event(self.client, event)

    def close(self) -> None:
        self.http_client.close()  # type: ignore[no-untyped-call]


def stream_event(event: MeterEvent) -> MeterEventStreamCreateParamsEvent:
    """The v2 shape: the same fields, an RFC 3339 timestamp."""
    at = datetime.fromtimestamp(event.timestamp_s, UTC)
    return {
        "event_name": event.event_name,
        "payload": {"stripe_customer_id": event.stripe_customer_id,
                    "value": str(event.value)},
        "identifier": event.identifier,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
    }


class StripeStreamSink(StripeSink):
    """v2: up to 100 events per call on the meter-events host.

    Stripe validates them later and reports errors by webhook
    (`v1.billing.meter.error_report_triggered`); duplicates of an
    identifier are dropped there, silently.
    """

    max_batch = STREAM_BATCH

    def __init__(self, settings: StripeSettings, pace: Callable[[], object],
                 clock: Callable[[], float]) -> None:
        super().__init__(settings, pace)
        self.clock = clock
        self.session: StripeClient | None = None
        self.renew_at = 0.0

    def stream_client(self) -> StripeClient:
        """A client on a session token, renewed a minute before expiry."""
        now = self.clock()
        if self.session is None or now >= self.renew_at:
            self.pace()
            token = self.client.v2.billing.meter_event_session.create()
            self.session = stripe_client(
                self.settings, token.authentication_token, self.http_client)
            self.renew_at = now + SESSION_RENEW_S
        return self.session

    def send(self, events: Sequence[MeterEvent]) -> SendOutcome:
        identifiers = "\n".join(e.identifier for e in events)
        try:
            stream = self.stream_client()
            self.pace()
            stream.v2.billing.meter_event_stream.create(
                {"events": [stream_event(e) for e in events]},
                {"idempotency_key":
                 hashlib.sha256(identifiers.encode()).hexdigest()})
        except stripe.TemporarySessionExpiredError as error:
            self.session = None
            return RetryLater(f"session expired: {error.user_message}")
        except stripe.StripeError as error:
            return outcome_of(error)
        return Delivered()


@dataclass
class DryRunSink:
    """No Stripe key: record each call once, as a dict and a JSON line.

    Nothing is marked delivered, so the same database can later be
    delivered for real.
    """

    log_path: Path | None = None
    max_batch: int = 1
    records: list[dict[str, object]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def ensure_meters(self, event_names: Sequence[str]) -> dict[str, str]:
        for name in event_names:
            self.record("POST /v1/billing/meters", meter_params(name),
                        f"meter-{name}")
        return {}  # none exists: nothing to remember

    def send(self, events: Sequence[MeterEvent]) -> SendOutcome:
        for event in events:
            self.record("POST /v1/billing/meter_events",
                        meter_event_params(event), event.identifier)
        return Recorded()

    def record(self, call: str, params: Mapping[str, object],
               idempotency_key: str) -> None:
        if idempotency_key in self.seen:
            return
        self.seen.add(idempotency_key)
        entry: dict[str, object] = {
            "call": call, "idempotency_key": idempotency_key,
            "params": params}
        self.records.append(entry)
        if self.log_path is not None:
            with self.log_path.open("a", encoding="utf-8") as log:
                log.write(json.dumps(entry, sort_keys=True) + "\n")

    def close(self) -> None:
        """Nothing is held open: each record is appended and closed."""
