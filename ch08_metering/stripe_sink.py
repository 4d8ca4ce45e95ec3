"""Sending meter events to Stripe, and what each answer means.

Chapter 8, "Stripe Meters API integration". The official SDK does the
HTTP: with `max_network_retries` it retries connection errors, timeouts
and 5xx itself, with the same idempotency key. Stripe saves a key's
first answer for 24 hours, a 500 included, so the key names one attempt
of the worker (identifier and attempt number); the event's `identifier`
is what makes Stripe keep one event however often it is sent. What is
left is to map errors to outcomes: a duplicate identifier means Stripe
already has the event (delivered), a 429 means slow down, a 5xx or a
timeout means try later, a connection never made means nothing was sent
(no attempt spent), and any other 4xx will never succeed, so it goes to
a human. `StripeSink` sends one
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
import urllib3
from stripe import StripeClient
from stripe.params.billing import MeterCreateParams, MeterEventCreateParams
from stripe.params.v2.billing import MeterEventStreamCreateParamsEvent

DUPLICATE = "already exists with identifier"  # Stripe's 400 message
SESSION_RENEW_S = 14 * 60  # tokens live 15 minutes
STREAM_BATCH = 100  # events per v2 request
DEFAULT_TIMEOUT_S = 10.0  # per HTTP request, the SDK's retries each
DEFAULT_MAX_RETRIES = 2  # the SDK's own, same idempotency key


@dataclass(frozen=True)
class MeterEvent:
    """One outbox row, as Stripe receives it."""

    identifier: str
    event_name: str
    stripe_customer_id: str
    value: int
    timestamp_s: int
    attempt: int = 1  # the row's how-manieth send: its idempotency key


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


@dataclass(frozen=True)
class NotSent:
    """Nothing reached Stripe (no connection, no v2 session): not the
    rows' fault, so it costs them no attempt; the worker pauses."""

    reason: str


SendOutcome = Delivered | RetryLater | Refused | Recorded | NotSent


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
    max_network_retries: int = DEFAULT_MAX_RETRIES
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StripeSettings | None:
        """None without STRIPE_API_KEY: there is nothing to send with."""
        if not env.get("STRIPE_API_KEY"):
            return None
        return cls(env["STRIPE_API_KEY"], env.get("STRIPE_API_BASE"),
                   env.get("STRIPE_METER_EVENTS_API_BASE"),
                   max_retries_from(env.get("STRIPE_MAX_RETRIES")),
                   timeout_from(env.get("STRIPE_TIMEOUT_S")))


def timeout_from(text: str | None) -> float:
    """STRIPE_TIMEOUT_S: seconds > 0 (default 10)."""
    if not text:
        return DEFAULT_TIMEOUT_S
    seconds = float(text)
    if not seconds > 0:
        raise ValueError(f"STRIPE_TIMEOUT_S must be > 0, not {text!r}")
    return seconds


def max_retries_from(text: str | None) -> int:
    """STRIPE_MAX_RETRIES: a whole number >= 0 (default 2)."""
    if not text:
        return DEFAULT_MAX_RETRIES
    retries = int(text)
    if retries < 0:
        raise ValueError(f"STRIPE_MAX_RETRIES must be >= 0, not {text!r}")
    return retries


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
    # Stripe replays a key's first answer for 24 h, a 500 too: one key
    # per attempt, reused only by the SDK's own retries of that attempt.
    key = f"{event.identifier}:{event.attempt}"
    try:
        client.v1.billing.meter_events.create(
            meter_event_params(event), {"idempotency_key": key})
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
    if status is None and never_connected(error):
        return NotSent(message)  # nothing left here: no attempt spent
    if status is None or status == 409 or status >= 500:
        return RetryLater(f"{status or 'no answer'}: {message}")
    return Refused(f"{status}: {message}")
# --8<-- [end:stripe_delivery]


def never_connected(error: stripe.StripeError) -> bool:
    """True if no connection was made (refused, unresolvable, connect
    timeout): then no byte of the request reached Stripe. A read timeout
    or a dropped connection may have reached it, so those are False."""
    cause: BaseException | None = error
    for _ in range(8):  # the chain: SDK, requests, urllib3, socket
        if cause is None:
            return False
        if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
            return True  # urllib3's NewConnectionError is one
        cause = cause.__cause__ or cause.__context__
    return False


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
        try:
            stream = self.stream_client()
        except stripe.StripeError as error:
            return session_failed(error)
        self.pace()
        try:
            stream.v2.billing.meter_event_stream.create(
                {"events": [stream_event(e) for e in events]},
                {"idempotency_key": stream_key(events)})
        except stripe.TemporarySessionExpiredError as error:
            self.session = None
            return RetryLater(f"session expired: {error.user_message}")
        except stripe.StripeError as error:
            return outcome_of(error)
        return Delivered()


def session_failed(error: stripe.StripeError) -> SendOutcome:
    """No session, so no event was sent: whatever the error, the rows
    are not at fault (a bad key still stops the pass)."""
    outcome = outcome_of(error)
    if isinstance(outcome, NotSent):
        return outcome
    return NotSent(f"no meter event session: {error.user_message or error!r}")


def stream_key(events: Sequence[MeterEvent]) -> str:
    """One idempotency key per attempt at this batch of rows."""
    attempts = "\n".join(f"{e.identifier}:{e.attempt}" for e in events)
    return hashlib.sha256(attempts.encode()).hexdigest()

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
                        meter_event_params(event),
                        f"{event.identifier}:{event.attempt}")
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
