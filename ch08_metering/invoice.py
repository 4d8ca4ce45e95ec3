"""`python -m ch08_metering invoice`: preview a customer's monthly bill.

Chapter 8, "Billing period roll-up". A period is a calendar month in
UTC, and usage belongs to it by event time, however late it arrived.
The ledger sums each stream; the plan's billing model rounds each
stream's total; each line is rounded to cents once. Audio lines show
what the same usage would cost under the other billing models, which is
the chapter's comparison on a real customer's traffic. Every line has a
name that `explain --line NAME` rebuilds from the raw events.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from ch08_metering.accounts import (
    AccountsError,
    add_accounts_argument,
    load_accounts,
)
from ch08_metering.database import add_database_argument, open_engine
from ch08_metering.ledger import Ledger
from ch08_metering.pricing import (
    AUDIO_MODELS,
    COUNTED_LINES,
    Metered,
    Price,
    PriceList,
    PricingError,
    StreamTotal,
    load_prices,
    prices_in_effect,
    stream_charges,
    stream_totals,
    to_cents,
)
from ch08_metering.schema import usage_events

MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class InvoiceError(ValueError):
    """A request for an invoice that cannot be answered, and why."""


@dataclass(frozen=True)
class Period:
    """A calendar month in UTC: [start, end)."""

    name: str
    start: datetime
    end: datetime

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp()) * 1000

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp()) * 1000

    def describe(self) -> str:
        return (f"{self.start:%Y-%m-%dT%H:%MZ} to {self.end:%Y-%m-%dT%H:%MZ}"
                " (UTC, by event time)")


def parse_period(text: str) -> Period:
    """`2026-11` -> [2026-11-01T00:00Z, 2026-12-01T00:00Z)."""
    match = MONTH.match(text)
    if match is None or not 1 <= int(match[2]) <= 12:
        raise InvoiceError(f"--period: {text!r} is not a month like 2026-11")
    year, month = int(match[1]), int(match[2])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return Period(text, start, end)


def is_audio(line: str) -> bool:
    return line == "audio" or line.startswith("audio+")


def line_names(prices: PriceList) -> list[str]:
    """Every line the price list can bill, in invoice order."""
    return ["audio", *(f"audio+{f}" for f in sorted(prices.features)),
            *(counted.name for counted in COUNTED_LINES.values())]


@dataclass(frozen=True)
class Alternative:
    """An audio line's usage billed under another model."""

    model: str
    quantity: int
    amount: Decimal  # rounded to cents


@dataclass(frozen=True)
class Line:
    name: str
    price: Price
    quantity: int  # billable units: seconds, characters, tokens, ...
    amount: Decimal  # rounded to cents, here and nowhere earlier
    alternatives: tuple[Alternative, ...] = ()


@dataclass(frozen=True)
class Invoice:
    customer: str
    period: Period
    prices: PriceList
    lines: tuple[Line, ...]

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))

    def total_under(self, model: str) -> Decimal:
        """The total with the audio lines billed under `model`."""
        total = Decimal("0.00")
        for line in self.lines:
            under = [a.amount for a in line.alternatives if a.model == model]
            total += under[0] if under else line.amount
        return total

    def amount_of(self, name: str) -> Decimal:
        """A line's amount; a line with no usage is not on the invoice."""
        amounts = [line.amount for line in self.lines if line.name == name]
        return amounts[0] if amounts else Decimal("0.00")


def line_quantities(streams: list[StreamTotal], prices: PriceList,
                    audio_model: str) -> dict[str, tuple[Price, int]]:
    """Billable units per line: each stream rounded, then summed."""
    lines: dict[str, tuple[Price, int]] = {}
    for stream in streams:
        for charge in stream_charges(stream, prices, audio_model):
            _, quantity = lines.get(charge.line, (charge.price, 0))
            lines[charge.line] = (charge.price, quantity + charge.quantity)
    return lines


def build_invoice(customer: str, period: Period, usage: Iterable[Metered],
                  prices: PriceList) -> Invoice:
    """Price one customer's usage of one period.

    `usage` may be the ledger's per-stream sums or its raw events: it is
    summed per stream either way, before any rounding.
    """
    if prices.effective > period.start.date():
        raise PricingError(f"prices effective {prices.effective} do not"
                           f" cover {period.name}")
    streams = stream_totals(usage)
    billed = {model: line_quantities(streams, prices, model)
              for model in AUDIO_MODELS}
    plan = billed[prices.audio_model]
    others = [m for m in AUDIO_MODELS if m != prices.audio_model]
    lines = []
    for name in line_names(prices):
        if name not in plan:
            continue
        price, quantity = plan[name]
        alternatives = []
        for model in others if is_audio(name) else []:
            _, billed_quantity = billed[model][name]
            alternatives.append(Alternative(
                model, billed_quantity, to_cents(price.of(billed_quantity))))
        lines.append(Line(name, price, quantity, to_cents(price.of(quantity)),
                          tuple(alternatives)))
    return Invoice(customer, period, prices, tuple(lines))


def invoice_for(ledger: Ledger, customer: str, period: Period,
                prices: PriceList) -> Invoice:
    """The invoice of a customer and period, from the ledger's sums."""
    usage = ledger.stream_usage(customer, period.start_ms, period.end_ms)
    return build_invoice(customer, period, usage, prices)


def quantity_text(quantity: int, price: Price) -> str:
    return f"{quantity:,} {price.unit.billable}"


def unit_price_text(price: Price) -> str:
    mark = "*" if price.illustrative else ""
    return f"{price.amount}/{price.unit.label}{mark}"


def row(name: str, quantity: str, unit_price: str, amount: str) -> str:
    return f"{name:<21}{quantity:>20}  {unit_price:<16}{amount:>12}".rstrip()


def add_on_multiplier(invoice: Invoice) -> Decimal | None:
    """What the audio lines cost together over the base audio line:
    how far stacked add-ons raise the rate. None without add-ons."""
    base = invoice.amount_of("audio")
    audio = [line.amount for line in invoice.lines if is_audio(line.name)]
    if not base or len(audio) < 2:
        return None
    return sum(audio, Decimal("0")) / base


def every_add_on_multiplier(prices: PriceList) -> Decimal:
    """The rate with every add-on of the price list, over the base."""
    stacked = sum((p.amount for p in prices.features.values()),
                  prices.audio.amount)
    return stacked / prices.audio.amount


def render_invoice(invoice: Invoice) -> str:
    """The invoice as a fixed-width table (79 columns at most)."""
    prices = invoice.prices
    others = [m for m in AUDIO_MODELS if m != prices.audio_model]
    out = [
        f"Invoice preview: {invoice.customer}, {invoice.period.name}",
        f"Period: {invoice.period.describe()}",
        f"Prices: effective {prices.effective}, {prices.currency};"
        f" audio billed {prices.audio_model}",
        "",
        row("line", "quantity", "unit price", f"amount {prices.currency}"),
    ]
    for line in invoice.lines:
        out.append(row(line.name, quantity_text(line.quantity, line.price),
                       unit_price_text(line.price), f"{line.amount:,}"))
        out += [row(f"  if {a.model}", quantity_text(a.quantity, line.price),
                    "", f"{a.amount:,}") for a in line.alternatives]
    if not invoice.lines:
        out.append("(no usage in this period)")
    out.append(row("total", "", "", f"{invoice.total:,}"))
    out += [row(f"  if {model}", "", "", f"{invoice.total_under(model):,}")
            for model in others]
    if stacked := add_on_multiplier(invoice):
        every = every_add_on_multiplier(prices)
        out.append(f"audio with add-ons: {stacked:.2f}x the base audio"
                   f" charge (every add-on: {every:.2f}x)")
    if any(line.price.illustrative for line in invoice.lines):
        out.append("* illustrative: not a vendor price")
    return "\n".join(out) + "\n"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags `invoice` and `explain` share."""
    parser.add_argument("--customer", required=True)
    parser.add_argument("--period", required=True,
                        help="a calendar month in UTC, like 2026-11")
    add_database_argument(parser)
    parser.add_argument("--prices", type=Path,
                        help="price file (default: the one in effect at "
                        "the start of the period)")
    add_accounts_argument(parser)


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="preview a customer's invoice for a month",
        description="Price a customer's usage of a month: one line per "
        "billed item, audio under every billing model.")
    add_common_arguments(parser)


@dataclass(frozen=True)
class Request:
    """What `invoice` and `explain` need, checked."""

    ledger: Ledger
    customer: str
    period: Period
    prices: PriceList


@contextmanager
def opened_request(args: argparse.Namespace) -> Iterator[Request]:
    """Check the flags, then open the ledger for as long as it is used."""
    period = parse_period(args.period)
    try:
        customers = load_accounts(args.accounts).customers
    except (OSError, AccountsError) as error:
        raise InvoiceError(f"--accounts: {error}") from None
    if args.customer not in customers:
        raise InvoiceError(f"--customer: unknown customer {args.customer!r}"
                           f" (known: {', '.join(sorted(customers))})")
    prices = (prices_in_effect(period.start.date()) if args.prices is None
              else load_prices(args.prices))
    engine = open_engine(args.database_url)
    where = engine.url.render_as_string(hide_password=True)
    try:
        try:
            found = inspect(engine).has_table(usage_events.name)
        except OperationalError as error:
            raise InvoiceError(f"--database-url: cannot open {where}:"
                               f" {error.orig}") from None
        if not found:
            raise InvoiceError(f"--database-url: no usage ledger at {where}")
        yield Request(Ledger(engine), args.customer, period, prices)
    finally:
        engine.dispose()


def run(args: argparse.Namespace) -> int:
    try:
        with opened_request(args) as request:
            invoice = invoice_for(request.ledger, request.customer,
                                  request.period, request.prices)
    except (InvoiceError, PricingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(render_invoice(invoice), end="")
    return 0

