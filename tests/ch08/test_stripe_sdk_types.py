"""The Stripe stand-in against the stripe SDK's own types: every route it
serves is a call of the SDK with that method and path, every parameter
the billing command sends is one the call declares, and every answer
it gives is of the type the call returns."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import parse_qsl

import pytest
import stripe
from stripe import ListObject

from ch08_metering.invoice import parse_period
from ch08_metering.pricing import PRICES_DIR, load_prices
from ch08_metering.stripe_billing import preview, subscribe
from ch08_metering.stripe_sink import stripe_client
from tests.ch08.delivery_harness import KEY, NOON, settings
from tests.ch08.stripe_sdk_types import (
    answer_of,
    answer_problems,
    parameter_problems,
    params_of,
    sends,
)
from tests.ch08.stripe_server import (
    ROUTES,
    RequestLog,
    StripeRoute,
    StripeState,
    route_of,
    running_stripe_server,
)

# The SDK's call for each route the stand-in serves.
SDK_CALLS: dict[StripeRoute, Callable[..., object]] = {
    ("POST", "/v1/billing/meters"): stripe.billing.MeterService.create,
    ("GET", "/v1/billing/meters"): stripe.billing.MeterService.list,
    ("POST", "/v1/billing/meters/{id}/deactivate"):
        stripe.billing.MeterService.deactivate,
    ("POST", "/v1/billing/meter_events"):
        stripe.billing.MeterEventService.create,
    ("POST", "/v2/billing/meter_event_session"):
        stripe.v2.billing.MeterEventSessionService.create,
    ("POST", "/v2/billing/meter_event_stream"):
        stripe.v2.billing.MeterEventStreamService.create,
    ("POST", "/v1/products"): stripe.ProductService.create,
    ("POST", "/v1/prices"): stripe.PriceService.create,
    ("POST", "/v1/customers"): stripe.CustomerService.create,
    ("GET", "/v1/customers/{customer}"): stripe.CustomerService.retrieve,
    ("POST", "/v1/subscriptions"): stripe.SubscriptionService.create,
    ("POST", "/v1/invoices/create_preview"):
        stripe.InvoiceService.create_preview,
}


@pytest.fixture(scope="module")
def exchanged() -> Iterator[list[RequestLog]]:
    """The billing command's requests, then one of each other route,
    made by the SDK; the stand-in's log of them."""
    state = StripeState(api_key=KEY, clock=lambda: NOON,
                        customers={"cus_acme"})
    http = stripe.RequestsClient(timeout=5)
    try:
        with running_stripe_server(state) as running:
            client = stripe_client(settings(running.url), KEY, http)
            prices = load_prices(PRICES_DIR / "2026-11.toml")
            preview(client, subscribe(client, prices, "cus_acme",
                                      parse_period("2026-11")))
            other_routes(client, running.url, http)
            yield state.requests
    finally:
        http.close()  # type: ignore[no-untyped-call]


def other_routes(client: stripe.StripeClient, url: str,
                 http: stripe.HTTPClient) -> None:
    client.v1.customers.create({"name": "Acme", "email": "ap@acme.test",
                                "metadata": {"tier": "growth"}})
    meter = client.v1.billing.meters.list({"limit": 1}).data[0]
    client.v1.billing.meter_events.create({
        "event_name": meter.event_name, "identifier": "evt-1",
        "payload": {"stripe_customer_id": "cus_acme", "value": "3"}})
    session = client.v2.billing.meter_event_session.create()
    streamer = stripe.StripeClient(
        session.authentication_token, http_client=http,
        base_addresses={"api": url, "meter_events": url})
    streamer.v2.billing.meter_event_stream.create({"events": [{
        "event_name": meter.event_name, "identifier": "evt-2",
        "payload": {"stripe_customer_id": "cus_acme", "value": "4"}}]})
    client.v1.billing.meters.deactivate(meter.id)


def sent_pairs(request: RequestLog) -> list[tuple[str, str]]:
    text = request.query if request.method == "GET" else (
        request.body.decode())
    return parse_qsl(text, keep_blank_values=True)


def test_every_route_served_is_an_sdk_call_with_that_method() -> None:
    assert set(ROUTES) == set(SDK_CALLS)
    for (method, template), call in SDK_CALLS.items():
        assert sends(call, method, template), (method, template)


def test_the_exchange_takes_every_route(
        exchanged: list[RequestLog]) -> None:
    taken = {route_of(r.method, r.path) for r in exchanged}
    assert taken == set(ROUTES)


def test_the_route_check_catches_a_wrong_method_or_path() -> None:
    assert not sends(stripe.billing.MeterService.list, "POST",
                     "/v1/billing/meters")
    assert not sends(stripe.CustomerService.retrieve, "GET",
                     "/v1/customers/{id}")


def test_the_billing_command_sends_only_declared_parameters(
        exchanged: list[RequestLog]) -> None:
    form_requests = [r for r in exchanged if not r.path.startswith("/v2/")]
    sent = {route_of(r.method, r.path) for r in form_requests}
    assert ("POST", "/v1/invoices/create_preview") in sent
    for request in form_requests:
        route = route_of(request.method, request.path)
        assert route is not None
        params = params_of(SDK_CALLS[route])
        assert parameter_problems(sent_pairs(request), params) == [], route


def test_the_parameter_check_catches_what_the_sdk_would_not_send() -> None:
    price = params_of(stripe.PriceService.create)
    assert parameter_problems([
        ("recurring[meters]", "mtr_1"),  # a typo
        ("recurring[usage_type]", "metred"),  # not a word Stripe knows
        ("items[0][price]", "price_1"),  # a subscription's parameter
        ("unit_amount", "ten"),
    ], price) == [
        "recurring[meters]: 'meters' is not a parameter of"
        " PriceCreateParamsRecurring",
        "recurring[usage_type]: 'metred' is not one of"
        " ('licensed', 'metered')",
        "items[0][price]: 'items' is not a parameter of PriceCreateParams",
        "unit_amount: 'ten' is not int"]


def test_every_answer_is_of_the_type_its_sdk_call_returns(
        exchanged: list[RequestLog]) -> None:
    for request in exchanged:
        route = route_of(request.method, request.path)
        assert route is not None and request.status == 200, request.path
        kind = answer_of(SDK_CALLS[route])
        if kind is type(None):  # the stream answers an empty object
            assert request.answer == {}
        else:
            assert answer_problems(request.answer, kind) == [], route


def test_the_answer_check_catches_what_stripe_would_not_send() -> None:
    meter = {"id": "mtr_1", "object": "billing.meter", "created": 1,
             "updated": 1, "display_name": "audio", "event_name": "audio",
             "event_time_window": None, "livemode": False,
             "status": "active",
             "customer_mapping": {"event_payload_key": "stripe_customer_id",
                                  "type": "by_id"},
             "default_aggregation": {"formula": "sum"},
             "status_transitions": {"deactivated_at": None},
             "value_settings": {"event_payload_key": "value"}}
    listed = {"object": "list", "url": "/v1/billing/meters",
              "has_more": False, "data": [meter]}
    kind = ListObject[stripe.billing.Meter]
    assert answer_problems(listed, kind) == []
    broken = {**meter, "status": "paused", "livemode": None,
              "display": "audio"}
    del broken["value_settings"]
    assert answer_problems({**listed, "data": [broken]}, kind) == [
        "$.data[0].display: not a field of Meter",
        "$.data[0].livemode: null, which bool is never",
        "$.data[0].status: 'paused' is not one of ('active', 'inactive')",
        "$.data[0].value_settings: missing from Meter"]
