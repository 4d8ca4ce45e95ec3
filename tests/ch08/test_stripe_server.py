"""The Stripe test server, driven by the real stripe SDK as a worker would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jsonschema
import pytest
import stripe
from stripe.params.billing import MeterEventCreateParams
from stripe.params.v2.billing import MeterEventStreamCreateParamsEvent

from examples.service import running_service
from tests.ch08.delivery_harness import NOON, calls
from tests.ch08.stripe_server import (
    EVENTS_PATH,
    MAX_PAST_S,
    MAX_STREAM_EVENTS,
    STREAM_PATH,
    RecordedEvent,
    RunningStripeServer,
    StripeState,
    rfc3339,
    running_stripe_server,
)

KEY = "sk_test_123"
NOW = NOON  # the server's frozen clock
CUSTOMERS = ("cus_alpha", "cus_beta")
METERS = {"audio_ms": "sum", "requests": "count"}


def frozen_state(rate_limit: float = 1000.0,
                 burst: int | None = None) -> StripeState:
    return StripeState(api_key=KEY, customers=CUSTOMERS, clock=lambda: NOW,
                       rate_limit=rate_limit, burst=burst)


@pytest.fixture
def server() -> Iterator[RunningStripeServer]:
    with running_stripe_server(frozen_state()) as running:
        yield running


@contextmanager
def sdk(url: str, key: str = KEY, *, retries: int = 0,
        timeout_s: float = 5.0) -> Iterator[stripe.StripeClient]:
    http = stripe.RequestsClient(timeout=timeout_s)
    try:
        yield stripe.StripeClient(
            key, base_addresses={"api": url, "meter_events": url},
            max_network_retries=retries, http_client=http)
    finally:
        http.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def client(server: RunningStripeServer) -> Iterator[stripe.StripeClient]:
    with sdk(server.url) as made:
        bootstrap(made)
        yield made


def bootstrap(client: stripe.StripeClient) -> list[str]:
    """Create the meters that are missing; the worker's idempotent start."""
    listed = client.v1.billing.meters.list({"status": "active", "limit": 1})
    active = {meter.event_name for meter in listed.auto_paging_iter()}
    missing = [name for name in METERS if name not in active]
    for name in missing:
        client.v1.billing.meters.create({
            "display_name": name.replace("_", " "), "event_name": name,
            "default_aggregation": {"formula": METERS[name]},
            "customer_mapping": {"event_payload_key": "stripe_customer_id",
                                 "type": "by_id"},
            "value_settings": {"event_payload_key": "value"}})
    return missing


def send(client: stripe.StripeClient, identifier: str, value: str = "1000",
         *, customer: str = "cus_alpha", at: float = NOW,
         event_name: str = "audio_ms") -> stripe.billing.MeterEvent:
    return client.v1.billing.meter_events.create({
        "event_name": event_name, "identifier": identifier,
        "timestamp": int(at),
        "payload": {"stripe_customer_id": customer, "value": value}})


def should_retry(error: stripe.StripeError) -> str | None:
    return (error.headers or {}).get("stripe-should-retry")


def test_bootstrap_creates_each_meter_once(
        server: RunningStripeServer) -> None:
    with sdk(server.url) as client:
        assert bootstrap(client) == ["audio_ms", "requests"]
        assert bootstrap(client) == []
        meter = client.v1.billing.meters.list().data[0]
    assert [m.event_name for m in server.state.meters] == list(METERS)
    assert isinstance(meter, stripe.billing.Meter)
    assert (meter.object, meter.event_name, meter.status) == (
        "billing.meter", "requests", "active")
    assert meter.default_aggregation.formula == "count"
    assert meter.customer_mapping.event_payload_key == "stripe_customer_id"
    assert meter.value_settings.event_payload_key == "value"
    assert meter.livemode is False


def test_meter_list_pages_newest_first(server: RunningStripeServer) -> None:
    with sdk(server.url) as client:
        for n in range(7):
            client.v1.billing.meters.create({
                "display_name": f"m{n}", "event_name": f"m{n}",
                "default_aggregation": {"formula": "sum"}})
        page = client.v1.billing.meters.list({"limit": 3})
        names = [m.event_name for m in page.auto_paging_iter()]
    assert page.has_more is True
    assert names == [f"m{n}" for n in reversed(range(7))]


def test_event_name_is_unique_among_active_meters(
        client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        bootstrap_one(client, "audio_ms")
    assert (refused.value.code, refused.value.param) == (
        "resource_already_exists", "event_name")
    old = client.v1.billing.meters.list({"limit": 100}).data[-1]
    client.v1.billing.meters.deactivate(old.id)
    bootstrap_one(client, "audio_ms")
    active = client.v1.billing.meters.list({"status": "active"}).data
    inactive = client.v1.billing.meters.list({"status": "inactive"}).data
    assert sorted(m.event_name for m in active) == ["audio_ms", "requests"]
    assert [m.id for m in inactive] == [old.id]


def bootstrap_one(client: stripe.StripeClient, name: str) -> None:
    client.v1.billing.meters.create({
        "display_name": name, "event_name": name,
        "default_aggregation": {"formula": "sum"}})


def test_meter_events_are_recorded_and_summed(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    event = send(client, "evt-1")
    send(client, "evt-2", "250")
    send(client, "evt-3", "40", customer="cus_beta")
    send(client, "evt-4", event_name="requests")
    assert isinstance(event, stripe.billing.MeterEvent)
    assert (event.object, event.identifier, event.timestamp) == (
        "billing.meter_event", "evt-1", int(NOW))
    assert event.payload["value"] == "1000"
    assert event.livemode is False
    assert server.state.events[0] == RecordedEvent(
        "audio_ms", "cus_alpha", 1000, "evt-1", int(NOW), stripe.api_version)
    assert server.state.totals() == {("cus_alpha", "audio_ms"): 1250,
                                     ("cus_beta", "audio_ms"): 40,
                                     ("cus_alpha", "requests"): 1000}


def test_duplicate_identifier_is_refused_and_not_retried(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    send(client, "evt-1")
    with (sdk(server.url, retries=2) as retrying,
          pytest.raises(stripe.InvalidRequestError) as refused):
        send(retrying, "evt-1", "5")
    assert refused.value.http_status == 400
    assert refused.value.user_message == (
        "An event already exists with identifier evt-1.")
    assert should_retry(refused.value) == "false"
    assert calls(server.state, EVENTS_PATH) == [200, 400]
    assert server.state.totals() == {("cus_alpha", "audio_ms"): 1000}


@pytest.mark.parametrize(("at", "code"), [
    (NOW - MAX_PAST_S - 1, "timestamp_too_far_in_past"),
    (NOW + 301, "timestamp_in_future"),
])
def test_timestamp_outside_the_window_is_refused(
        client: stripe.StripeClient, at: float, code: str) -> None:
    send(client, "oldest", at=NOW - MAX_PAST_S)
    send(client, "latest", at=NOW + 300)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        send(client, "outside", at=at)
    assert (refused.value.code, refused.value.param) == (code, "timestamp")


def test_the_window_follows_the_server_clock(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    send(client, "today")
    server.state.advance(36 * 86_400)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        send(client, "backfill")
    assert refused.value.code == "timestamp_too_far_in_past"


@pytest.mark.parametrize(("value", "code"), [
    ("1.5", "meter_event_invalid_value"),
    ("-3", "meter_event_invalid_value"),
    ("1e3", "meter_event_invalid_value"),
    ("1234567890123456", "meter_event_value_too_many_digits"),
])
def test_value_must_be_a_whole_number(
        server: RunningStripeServer, client: stripe.StripeClient,
        value: str, code: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        send(client, "evt-1", value)
    assert (refused.value.code, refused.value.param) == (
        code, "payload[value]")
    assert server.state.events == []


@pytest.mark.parametrize(("customer", "event_name", "code"), [
    ("cus_unknown", "audio_ms", "meter_event_customer_not_found"),
    ("cus_alpha", "video_ms", "no_meter"),
])
def test_an_unknown_customer_or_meter_is_accepted_then_reported(
        server: RunningStripeServer, client: stripe.StripeClient,
        customer: str, event_name: str, code: str) -> None:
    """As on Stripe: v1 answers 200 and the problem comes later, as a
    meter error report; the event counts towards nothing."""
    event = send(client, "evt-1", customer=customer, event_name=event_name)
    assert (event.identifier, event.event_name) == ("evt-1", event_name)
    assert calls(server.state, EVENTS_PATH) == [200]
    assert [(r.code, r.identifier, r.event_name)
            for r in server.state.error_reports] == [
        (code, "evt-1", event_name)]
    assert server.state.events == []


def test_identifier_is_at_most_100_characters(
        client: stripe.StripeClient) -> None:
    send(client, "x" * 100)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        send(client, "y" * 101)
    assert refused.value.param == "identifier"


def test_a_wrong_or_missing_key_is_refused(
        server: RunningStripeServer) -> None:
    with (sdk(server.url, "sk_test_other") as client,
          pytest.raises(stripe.AuthenticationError) as refused):
        client.v1.billing.meters.list()
    assert refused.value.http_status == 401
    bare = httpx.get(f"{server.url}/v1/billing/meters", timeout=5)
    assert bare.status_code == 401
    assert bare.json()["error"]["type"] == "invalid_request_error"


def test_unknown_parameters_and_urls_are_refused(
        server: RunningStripeServer) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    unknown = httpx.post(f"{server.url}{EVENTS_PATH}", headers=auth,
                         data={"event_name": "audio_ms", "value": "5"},
                         timeout=5)
    missing = httpx.get(f"{server.url}/v1/nothing", headers=auth, timeout=5)
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "parameter_unknown"
    assert missing.status_code == 404


def test_an_idempotency_key_replays_its_first_success(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    params: MeterEventCreateParams = {
        "event_name": "audio_ms", "identifier": "evt-1",
        "timestamp": int(NOW),
        "payload": {"stripe_customer_id": "cus_alpha", "value": "5"}}
    first = client.v1.billing.meter_events.create(
        params, {"idempotency_key": "key-1"})
    again = client.v1.billing.meter_events.create(
        params, {"idempotency_key": "key-1"})
    assert again.identifier == first.identifier
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError):
        client.v1.billing.meter_events.create(
            {**params, "identifier": "evt-2"}, {"idempotency_key": "key-1"})
    assert len(server.state.events) == 1


def test_the_rate_limit_answers_429_and_the_sdk_does_not_retry() -> None:
    state = frozen_state(rate_limit=0.001, burst=2)
    with (running_stripe_server(state) as running,
          sdk(running.url, retries=2) as client):
        bootstrap_one(client, "audio_ms")
        send(client, "evt-1")
        with pytest.raises(stripe.RateLimitError) as limited:
            send(client, "evt-2")
    assert limited.value.http_status == 429
    assert should_retry(limited.value) is None
    assert calls(state, EVENTS_PATH) == [200, 429]


def test_an_injected_429_fails_once(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    server.state.inject("429")
    with pytest.raises(stripe.RateLimitError):
        send(client, "evt-1")
    send(client, "evt-1")
    assert calls(server.state, EVENTS_PATH) == [429, 200]


def test_the_sdk_retries_an_injected_500(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    server.state.inject("500", count=2)
    with sdk(server.url, retries=2) as retrying:
        send(retrying, "evt-1")
    server.state.inject("500")
    with pytest.raises(stripe.APIError) as failed:
        send(client, "evt-2")
    assert failed.value.http_status == 500
    assert calls(server.state, EVENTS_PATH) == [500, 500, 200, 500]
    assert [e.identifier for e in server.state.events] == ["evt-1"]


def test_fail_for_lasts_until_the_server_clock_passes(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    server.state.fail_for(60)
    with pytest.raises(stripe.APIError):
        send(client, "evt-1")
    server.state.advance(61)
    send(client, "evt-1", at=NOW + 61)
    assert calls(server.state, EVENTS_PATH) == [500, 200]


def test_a_timeout_before_commit_records_nothing() -> None:
    state = frozen_state()
    with running_stripe_server(state) as running:
        with sdk(running.url) as client:
            bootstrap(client)
        state.inject("timeout", hold_s=60)
        with (sdk(running.url, timeout_s=0.3) as impatient,
              pytest.raises(stripe.APIConnectionError) as lost):
            send(impatient, "evt-1")
        assert lost.value.should_retry is True
        assert state.events == []
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5, "the held request delayed stop"
    assert calls(state, EVENTS_PATH) == [500]


def test_a_timeout_after_commit_is_replayed_to_the_sdk_retry(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    server.state.inject("timeout", record=True, hold_s=60)
    with sdk(server.url, retries=1, timeout_s=0.3) as impatient:
        event = send(impatient, "evt-1")
    assert event.identifier == "evt-1"
    assert len(server.state.events) == 1
    with pytest.raises(stripe.InvalidRequestError) as refused:
        send(client, "evt-1")
    assert should_retry(refused.value) == "false"


def stream_events(count: int, *, start: int = 0, value: str = "7",
                  ) -> list[MeterEventStreamCreateParamsEvent]:
    return [{"event_name": "audio_ms", "identifier": f"v2-{n}",
             "timestamp": rfc3339(NOW),
             "payload": {"stripe_customer_id": "cus_alpha", "value": value}}
            for n in range(start, start + count)]


@contextmanager
def stream(server: RunningStripeServer,
           client: stripe.StripeClient) -> Iterator[stripe.StripeClient]:
    session = client.v2.billing.meter_event_session.create()
    with sdk(server.url, session.authentication_token) as streamer:
        yield streamer


def test_a_session_lasts_15_minutes(client: stripe.StripeClient) -> None:
    session = client.v2.billing.meter_event_session.create()
    assert isinstance(session, stripe.v2.billing.MeterEventSession)
    assert session.object == "v2.billing.meter_event_session"
    assert session.created == rfc3339(NOW)
    assert (datetime.fromisoformat(session.expires_at)
            - datetime.fromisoformat(session.created)).total_seconds() == 900
    assert session.livemode is False
    assert session.id


def test_the_stream_takes_100_events(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    with stream(server, client) as streamer:
        streamer.v2.billing.meter_event_stream.create(
            {"events": stream_events(MAX_STREAM_EVENTS)})
        with pytest.raises(stripe.InvalidRequestError):
            streamer.v2.billing.meter_event_stream.create(
                {"events": stream_events(101, start=100)})
    assert server.state.totals() == {("cus_alpha", "audio_ms"): 700}


def test_an_expired_or_unknown_session_is_refused(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    with stream(server, client) as streamer:
        server.state.advance(16 * 60)
        with pytest.raises(stripe.TemporarySessionExpiredError) as expired:
            streamer.v2.billing.meter_event_stream.create(
                {"events": stream_events(1)})
    assert expired.value.code == "billing_meter_event_session_expired"
    assert expired.value.http_status == 401
    with pytest.raises(stripe.AuthenticationError):
        client.v2.billing.meter_event_stream.create(
            {"events": stream_events(1)})
    assert server.state.events == []


def test_the_stream_reports_bad_events_instead_of_failing(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    send(client, "v2-0")
    good, duplicate = stream_events(2, start=1), stream_events(1)
    fractional = stream_events(1, start=3, value="1.5")
    old = stream_events(1, start=4)
    old[0]["timestamp"] = rfc3339(NOW - MAX_PAST_S - 60)
    with stream(server, client) as streamer:
        streamer.v2.billing.meter_event_stream.create(
            {"events": good + duplicate + fractional + old})
    assert [(r.code, r.identifier) for r in server.state.error_reports] == [
        ("duplicate_identifier", "v2-0"),
        ("meter_event_invalid_value", "v2-3"),
        ("timestamp_too_far_in_past", "v2-4")]
    assert server.state.totals() == {("cus_alpha", "audio_ms"): 1014}


# stripe's HTTPXClient posts a str as `data=`, which httpx 0.28 deprecates
@pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")
async def test_the_async_sdk_works_from_an_event_loop(
        server: RunningStripeServer) -> None:
    http = stripe.HTTPXClient(timeout=5)
    client = stripe.StripeClient(
        KEY, base_addresses={"api": server.url, "meter_events": server.url},
        http_client=http)
    try:
        await client.v1.billing.meters.create_async({
            "display_name": "audio", "event_name": "audio_ms",
            "default_aggregation": {"formula": "sum"}})
        await client.v1.billing.meter_events.create_async({
            "event_name": "audio_ms", "identifier": "evt-1",
            "payload": {"stripe_customer_id": "cus_beta", "value": "3"}})
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]
    assert server.state.totals() == {("cus_beta", "audio_ms"): 3}


WORKER = """
import sys, stripe
url, identifier = sys.argv[1], sys.argv[2]
client = stripe.StripeClient("sk_test_123", max_network_retries=0,
                             base_addresses={"api": url, "meter_events": url})
client.v1.billing.meter_events.create({"event_name": "audio_ms",
    "identifier": identifier,
    "payload": {"stripe_customer_id": "cus_alpha", "value": "10"}})
"""


def test_state_outlives_worker_processes(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    for restart in range(2):
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER, server.url, f"evt-{restart}"])
        assert worker.wait(timeout=30) == 0
        assert len(server.state.events) == restart + 1
    assert server.state.totals() == {("cus_alpha", "audio_ms"): 20}


async def test_the_command_line_serves_until_terminated() -> None:
    async with running_service(("-m", "tests.ch08.stripe_server",
                                "--port", "0"),
                               start_timeout_s=30) as service:
        assert service.banner == []  # "listening on" is its first line
        async with httpx.AsyncClient(timeout=5) as http:
            listed = await http.get(
                f"http://127.0.0.1:{service.port}/v1/billing/meters",
                headers={"Authorization": "Bearer sk_test_any"})
        assert listed.json()["object"] == "list"
    assert service.process.returncode == 0  # SIGTERM: a clean stop


def test_a_500_is_saved_under_its_key_for_24_hours(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    """A 500 raised inside the endpoint is the key's first answer: the
    same key gets it again, whatever happens meanwhile, for 24 hours."""
    server.state.inject("500", saved=True)
    params: MeterEventCreateParams = {
        "event_name": "audio_ms", "identifier": "evt-1",
        "timestamp": int(NOW),
        "payload": {"stripe_customer_id": "cus_alpha", "value": "5"}}
    key: stripe.RequestOptions = {"idempotency_key": "key-1"}
    with pytest.raises(stripe.APIError):
        client.v1.billing.meter_events.create(params, key)
    with pytest.raises(stripe.APIError) as replayed:
        client.v1.billing.meter_events.create(params, key)
    assert (replayed.value.headers or {}).get(
        "idempotent-replayed") == "true"
    server.state.advance(24 * 3600 - 1)
    with pytest.raises(stripe.APIError):
        client.v1.billing.meter_events.create(params, key)
    server.state.advance(1)  # the key is forgotten: the request runs
    client.v1.billing.meter_events.create(params, key)
    assert calls(server.state, EVENTS_PATH) == [500, 500, 500, 200]
    assert [e.identifier for e in server.state.events] == ["evt-1"]


SPEC = json.loads((Path(__file__).parent
                   / "stripe_openapi_meter_events.json").read_text())
FORMATS = jsonschema.FormatChecker()


def rfc3339_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the type check speaks for other types
    return datetime.fromisoformat(value).tzinfo is not None


def unix_time(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


FORMATS.checks("date-time", raises=ValueError)(rfc3339_time)
FORMATS.checks("unix-time")(unix_time)


def schema_of(path: str, part: str) -> dict[str, Any]:
    """The request schema (part "request") or the 200 answer's."""
    operation = SPEC["paths"][path]["post"]
    if part == "request":
        [content] = operation["requestBody"]["content"].values()
    else:
        [content] = operation["responses"]["200"]["content"].values()
    schema: dict[str, Any] = content["schema"]
    if "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit(
            "/", 1)[1]]
    return schema


def problems(document: object, schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(schema, format_checker=FORMATS)
    return [f"{list(e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(document)]


def form_document(body: bytes, schema: dict[str, Any]) -> dict[str, Any]:
    """A form body as the JSON its schema describes: `payload[k]=v`
    nested (deepObject), integers where the schema says integer."""
    document: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        name, _, inner = key.partition("[")
        if inner:
            document.setdefault(name, {})[inner.rstrip("]")] = value
        elif schema["properties"].get(name, {}).get("type") == "integer":
            document[name] = int(value)
        else:
            document[name] = value
    return document


def test_requests_and_answers_follow_stripes_openapi_description(
        server: RunningStripeServer, client: stripe.StripeClient) -> None:
    """Each meter-event request the SDK made, and each 200 the server
    gave it, is valid under Stripe's published schemas."""
    send(client, "evt-1")
    send(client, "evt-2", customer="cus_unknown")  # accepted: reported
    with stream(server, client) as streamer:
        streamer.v2.billing.meter_event_stream.create(
            {"events": stream_events(3)})
    checked = [r for r in server.state.requests if r.path in SPEC["paths"]]
    for request in checked:
        if "requestBody" in SPEC["paths"][request.path]["post"]:
            schema = schema_of(request.path, "request")
            sent = (json.loads(request.body) if request.path == STREAM_PATH
                    else form_document(request.body, schema))
            assert problems(sent, schema) == [], request.path
        assert request.status == 200
        assert problems(request.answer,
                        schema_of(request.path, "answer")) == []
    assert sorted({r.path for r in checked}) == sorted(SPEC["paths"])
    assert SPEC["x-source"]["commit"] in SPEC["x-source"]["url"]


def test_the_openapi_check_catches_what_stripe_would_not_send() -> None:
    """The check itself: answers Stripe would never give fail it."""
    event = schema_of(EVENTS_PATH, "answer")
    session = schema_of("/v2/billing/meter_event_session", "answer")
    assert problems({"object": "billing.meter_event"}, event) != []
    assert problems({"id": "x", "object": "v2.billing.meter_event_session",
                     "authentication_token": "t", "livemode": False,
                     "created": "yesterday", "expires_at": rfc3339(NOW)},
                    session) == ["['created']: 'yesterday' is not a "
                                 "'date-time'"]
    assert problems({"extra": 1}, schema_of(STREAM_PATH, "answer")) != []
