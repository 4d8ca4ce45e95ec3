"""`python -m ch08_metering stripe-invoice`: Stripe's invoice beside ours.

Chapter 8, "Stripe Meters API integration" and "Stripe token billing".
Through the official SDK it sets up what Stripe needs to bill the
meters the delivery worker feeds: the meters (as delivery makes them),
one product and one metered price per line of our price list (audio,
each add-on, characters, tokens), priced per meter unit in cents with
`unit_amount_decimal` (audio is metered in milliseconds, so an hourly
price becomes cents per millisecond, to Stripe's 12 decimals), and a
subscription for the customer's Stripe id, backdated to the period's
start and renewing at its end. Then it asks Stripe for the invoice
preview and prints it line by line beside our own invoice with the
difference. Stripe sums each meter over the period and rounds each line
to cents; we round each stream up to whole seconds first, so a customer
whose streams end mid-second pays Stripe slightly less.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import stripe
from stripe import StripeClient

from ch08_metering.accounts import load_accounts
from ch08_metering.invoice import (
    Invoice,
    InvoiceError,
    Period,
    add_common_arguments,
    invoice_for,
    line_names,
    opened_request,
)
from ch08_metering.pricing import Price, PriceList, PricingError
from ch08_metering.rollup import BASE_EVENT_NAMES, stripe_event_names
from ch08_metering.stripe_sink import (
    StripeSettings,
    meter_params,
    stripe_client,
)

DECIMALS = Decimal("1e-12")  # Stripe's unit_amount_decimal precision
MS_PER_SECOND = 1000  # audio meters count ms; audio prices are per second


@dataclass(frozen=True)
class StripeLine:
    """One line of our price list as a Stripe meter and metered price."""

    line: str
    event_name: str
    price: Price
    unit_amount_decimal: Decimal  # cents per meter unit


@dataclass(frozen=True)
class Subscribed:
    customer: str  # the Stripe customer id
    subscription: str
    lines: dict[str, str]  # our line name by Stripe price id


@dataclass(frozen=True)
class Compared:
    line: str
    ours: Decimal  # USD, rounded to cents
    stripe: Decimal  # USD, from Stripe's cents
    stripe_quantity: int  # meter units: ms, characters, tokens

    @property
    def difference(self) -> Decimal:
        return self.stripe - self.ours


def event_name_of(line: str) -> str:
    """`audio+diarization` -> `speech_audio_ms_diarization`."""
    if line in BASE_EVENT_NAMES:
        return BASE_EVENT_NAMES[line]
    meter, _, feature = line.partition("+")
    features = [feature] if feature else []
    return stripe_event_names(f"{meter}_ms", features)[-1]


def unit_amount_decimal(price: Price, meter_units: int) -> Decimal:
    """Our price per `unit.per` billable units as cents per meter unit;
    `meter_units` is meter units per billable unit (1000 ms a second)."""
    cents = price.amount * 100 / (price.unit.per * meter_units)
    return cents.quantize(DECIMALS).normalize()


def stripe_lines(prices: PriceList) -> list[StripeLine]:
    """Every billed line of the price list, in invoice order."""
    out = []
    for line in line_names(prices):
        price = prices.of_line(line)
        units = MS_PER_SECOND if line.startswith("audio") else 1
        out.append(StripeLine(line, event_name_of(line), price,
                              unit_amount_decimal(price, units)))
    return out


def decimal_text(amount: Decimal) -> str:
    return format(amount, "f")


def ensure_meters(client: StripeClient,
                  event_names: Iterable[str]) -> dict[str, str]:
    """Meter id by event name: the active ones, the missing created as
    delivery creates them (a sum, customer and value keys)."""
    meters = client.v1.billing.meters
    wanted = set(event_names)
    found = {m.event_name: m.id for m in meters.list(
        {"status": "active", "limit": 100}).auto_paging_iter()
        if m.event_name in wanted}
    for name in sorted(wanted - found.keys()):
        found[name] = meters.create(
            meter_params(name), {"idempotency_key": f"meter-{name}"}).id
    return found


# --8<-- [start:stripe_metered_price]
def create_price(client: StripeClient, line: StripeLine, meter_id: str,
                 currency: str, tag: str) -> str:
    """A product and a monthly metered price on the line's meter."""
    product = client.v1.products.create(
        {"name": f"Speech API {line.line}", "metadata": {"line": line.line}},
        {"idempotency_key": f"{tag}-product-{line.line}"})
    price = client.v1.prices.create({
        "currency": currency.lower(), "product": product.id,
        # text: the SDK writes a Decimal with str(), 5.55556E-7
        "unit_amount_decimal": decimal_text(  # type: ignore[typeddict-item]
            line.unit_amount_decimal),
        "recurring": {"interval": "month", "usage_type": "metered",
                      "meter": meter_id},
        "metadata": {"line": line.line},
    }, {"idempotency_key": f"{tag}-price-{line.line}"})
    return price.id
# --8<-- [end:stripe_metered_price]


def subscribe(client: StripeClient, prices: PriceList, customer_id: str,
              period: Period) -> Subscribed:
    """Meters, prices and a subscription billing the period's usage."""
    client.v1.customers.retrieve(customer_id)  # unknown: Stripe's 404
    lines = stripe_lines(prices)
    meters = ensure_meters(client, [line.event_name for line in lines])
    tag = f"speechapi-{period.name}-{customer_id}"
    by_price = {create_price(client, line, meters[line.event_name],
                             prices.currency, tag): line.line
                for line in lines}
    subscription = client.v1.subscriptions.create({
        "customer": customer_id,
        "items": [{"price": price_id} for price_id in by_price],
        "backdate_start_date": int(period.start.timestamp()),
        "billing_cycle_anchor": int(period.end.timestamp()),
        "proration_behavior": "none",
    }, {"idempotency_key": f"{tag}-subscription"})
    return Subscribed(customer_id, subscription.id, by_price)


def preview(client: StripeClient,
            subscribed: Subscribed) -> dict[str, tuple[int, int]]:
    """Stripe's next invoice: (quantity, cents) by our line name."""
    invoice = client.v1.invoices.create_preview({
        "customer": subscribed.customer,
        "subscription": subscribed.subscription})
    lines: dict[str, tuple[int, int]] = {}
    for item in invoice.lines.data:
        details = item.pricing.price_details if item.pricing else None
        price = details.price if details else ""
        price_id = price if isinstance(price, str) else price.id
        name = subscribed.lines.get(price_id, price_id)
        lines[name] = (item.quantity or 0, item.amount)
    return lines


def compare(ours: Invoice, theirs: dict[str, tuple[int, int]]
            ) -> list[Compared]:
    """Each line on either invoice, ours against Stripe's."""
    names = [n for n in line_names(ours.prices)
             if n in theirs or ours.amount_of(n)]
    return [Compared(n, ours.amount_of(n),
                     Decimal(theirs.get(n, (0, 0))[1]) / 100,
                     theirs.get(n, (0, 0))[0]) for n in names]


def render(customer: str, period: Period, rows: Sequence[Compared]) -> str:
    out = [f"Stripe's invoice preview beside ours: {customer}, "
           f"{period.name}", "",
           f"{'line':<21}{'Stripe quantity':>18}{'ours':>12}"
           f"{'Stripe':>12}{'difference':>12}"]
    for r in rows:
        out.append(f"{r.line:<21}{r.stripe_quantity:>18,}{r.ours:>12,}"
                   f"{r.stripe:>12,}{r.difference:>12,}")
    ours = sum((r.ours for r in rows), Decimal("0.00"))
    theirs = sum((r.stripe for r in rows), Decimal("0.00"))
    out.append(f"{'total':<39}{ours:>12,}{theirs:>12,}{theirs - ours:>12,}")
    if theirs != ours:
        out.append("Stripe sums milliseconds over the month; we round each"
                   " stream up to a second first.")
    return "\n".join(out) + "\n"


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="bill a customer's month on Stripe and compare",
        description="Create Stripe's meters, metered prices and a "
        "subscription for the customer's month, then print Stripe's "
        "invoice preview beside ours. Deliver the usage first "
        "(`deliver --drain`). Needs STRIPE_API_KEY; STRIPE_API_BASE "
        "points it at a test server.")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    settings = StripeSettings.from_env(os.environ)
    if settings is None:
        print("error: STRIPE_API_KEY is not set", file=sys.stderr)
        return 2
    http = stripe.RequestsClient(timeout=settings.timeout_s)
    try:
        with opened_request(args) as request:
            ours = invoice_for(request.ledger, request.customer,
                               request.period, request.prices)
        stripe_id = load_accounts(args.accounts).customers[
            args.customer].stripe_customer_id
        client = stripe_client(settings, settings.api_key, http)
        subscribed = subscribe(client, ours.prices, stripe_id, ours.period)
        rows = compare(ours, preview(client, subscribed))
    except (InvoiceError, PricingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except stripe.StripeError as error:
        print(f"error: Stripe: {error.user_message or error}",
              file=sys.stderr)
        return 1
    finally:
        http.close()  # type: ignore[no-untyped-call]
    print(render(ours.customer, ours.period, rows), end="")
    return 0
