"""Stripe end to end: usage delivered, Stripe's invoice against ours."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe
from stripe import StripeClient

from ch08_metering.__main__ import main
from ch08_metering.events import Feature, Meter, UsageEvent, usage_event
from ch08_metering.invoice import invoice_for, parse_period
from ch08_metering.ledger import Ledger
from ch08_metering.pricing import PriceList
from ch08_metering.stripe_billing import (
    compare,
    decimal_text,
    preview,
    stripe_lines,
    subscribe,
)
from ch08_metering.stripe_sink import stripe_client
from tests.ch08.delivery_harness import (
    KEY,
    NOON,
    FakeClock,
    settings,
    v1_sink,
    worker_for,
)
from tests.ch08.stripe_server import RunningStripeServer

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"],
                                      indirect=True)
NOVEMBER = parse_period("2026-11")


def usage(customer: str, meter: Meter, value: int, at: float,
          stream: str, features: tuple[Feature, ...] = (),
          sequence: int = 1) -> UsageEvent:
    return usage_event(stream_id=stream, sequence=sequence,
                       customer=customer, source="test", meter=meter,
                       value=value, features=features, at=at)


def acme_month() -> list[UsageEvent]:
    """Whole seconds of audio, so per-second billing and Stripe's sum
    of milliseconds agree: 1,830 s diarized (two events), 1,500 s plain,
    12,345 characters, 123,456 tokens."""
    return [
        usage("acme", "audio_ms", 1_000_000, NOON - 7200, "s1",
              ("diarization",)),
        usage("acme", "audio_ms", 830_000, NOON - 7140, "s1",
              ("diarization",), sequence=2),
        usage("acme", "audio_ms", 1_500_000, NOON - 3600, "s2"),
        usage("acme", "characters", 12_345, NOON - 1800, "c1"),
        usage("acme", "tokens", 123_456, NOON - 900, "t1"),
    ]


def client_for(server: RunningStripeServer) -> StripeClient:
    return stripe_client(settings(server.url), KEY,
                         stripe.RequestsClient(timeout=5))


def delivered(ledger: Ledger, clock: FakeClock,
              server: RunningStripeServer) -> None:
    ledger.ingest(acme_month(), now_ms=int(NOON * 1000))
    worker = worker_for(ledger.engine, v1_sink(server.url), clock)
    worker.run_once()
    worker.sink.close()


def test_prices_become_cents_per_meter_unit(prices: PriceList) -> None:
    units = {line.line: (line.event_name,
                         decimal_text(line.unit_amount_decimal))
             for line in stripe_lines(prices)}
    assert units == {
        # 0.15 USD/hour = 15 cents / 3,600,000 ms, to 12 decimals
        "audio": ("speech_audio_ms", "0.000004166667"),
        "audio+diarization": ("speech_audio_ms_diarization",
                              "0.000000555556"),
        "audio+pii_redaction": ("speech_audio_ms_pii_redaction",
                                "0.000002222222"),
        "audio+summarization": ("speech_audio_ms_summarization",
                                "0.000000833333"),
        "characters": ("speech_characters", "0.005"),  # 5 cents / 1,000
        "tokens": ("speech_tokens", "0.00025"),  # 250 cents / 1,000,000
        # 4.00 USD/GPU hour = 400 cents / 3,600,000 ms, to 12 decimals
        "compute": ("speech_compute_ms", "0.000111111111"),
        "api_calls": ("speech_api_calls", "0.01"),  # 10 cents / 1,000
    }


@sqlite_only
def test_stripes_invoice_preview_equals_ours_to_the_cent(
        ledger: Ledger, clock: FakeClock, server: RunningStripeServer,
        prices: PriceList) -> None:
    delivered(ledger, clock, server)
    client = client_for(server)
    subscribed = subscribe(client, prices, "cus_acme", NOVEMBER)
    theirs = preview(client, subscribed)
    # Worked by hand: 3,330 s x 0.15/3600 = 13.875 cents -> 14;
    # 1,830 s x 0.02/3600 = 1.017 -> 1; 12,345 x 0.005 = 61.725 -> 62;
    # 123,456 x 0.00025 = 30.864 -> 31.
    assert theirs == {"audio": (3_330_000, 14),
                      "audio+diarization": (1_830_000, 1),
                      "audio+pii_redaction": (0, 0),
                      "audio+summarization": (0, 0),
                      "characters": (12_345, 62),
                      "tokens": (123_456, 31),
                      "compute": (0, 0),  # this month has none
                      "api_calls": (0, 0)}
    ours = invoice_for(ledger, "acme", NOVEMBER, prices)
    assert ours.total == Decimal("1.08")
    rows = compare(ours, theirs)
    assert [(r.line, r.ours, r.stripe) for r in rows if r.ours] == [
        ("audio", Decimal("0.14"), Decimal("0.14")),
        ("audio+diarization", Decimal("0.01"), Decimal("0.01")),
        ("characters", Decimal("0.62"), Decimal("0.62")),
        ("tokens", Decimal("0.31"), Decimal("0.31"))]
    assert all(r.difference == 0 for r in rows)


@sqlite_only
def test_stripe_invoice_command_prints_both_invoices(
        ledger: Ledger, clock: FakeClock, server: RunningStripeServer,
        database_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    delivered(ledger, clock, server)
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    monkeypatch.setenv("STRIPE_API_BASE", server.url)
    code = main(["stripe-invoice", "--customer", "acme", "--period",
                 "2026-11", "--database-url", database_url])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "tokens" in out and "123,456" in out
    assert out.splitlines()[-1].split() == ["total", "1.08", "1.08",
                                            "0.00"]


def test_an_unknown_customer_is_stripes_404(
        server: RunningStripeServer, prices: PriceList) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        subscribe(client_for(server), prices, "cus_ghost", NOVEMBER)
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"
    assert "No such customer: 'cus_ghost'" in str(caught.value)


def test_a_missing_price_or_meter_is_refused_as_stripe_refuses(
        server: RunningStripeServer) -> None:
    client = client_for(server)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.create(
            {"customer": "cus_acme", "items": [{"price": "price_nope"}]})
    assert (caught.value.http_status, caught.value.code,
            caught.value.param) == (400, "resource_missing",
                                    "items[0][price]")
    product = client.v1.products.create({"name": "audio"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create({
            "currency": "usd", "product": product.id,
            "unit_amount_decimal": "0.005",  # type: ignore[typeddict-item]
            "recurring": {"interval": "month", "usage_type": "metered"}})
    assert (caught.value.code, caught.value.param) == (
        "parameter_missing", "recurring[meter]")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.create_preview({"customer": "cus_beta"})
    assert caught.value.code == "invoice_upcoming_none"
