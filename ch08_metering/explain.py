"""`python -m ch08_metering explain`: one invoice line, event by event.

Chapter 8, "Audit trail for usage disputes". When a customer disputes a
line, the answer is the raw events behind it: each with its event time
and identity, grouped by stream, each stream's total and how the billing
model rounded it, and the line's quantity times its unit price. This
rebuilds the line from the events themselves, not from the ledger's
sums, and checks that it comes to the invoice's amount to the cent.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ch08_metering.invoice import (
    Invoice,
    InvoiceError,
    add_common_arguments,
    invoice_for,
    line_names,
    opened_request,
)
from ch08_metering.ledger import LedgerEvent
from ch08_metering.pricing import (
    AUDIO_MODELS,
    COUNTED_LINES,
    BillingModel,
    Price,
    PriceList,
    PricingError,
    to_cents,
)

METER_UNITS = {"audio_ms": "ms", "characters": "chars", "tokens": "tokens",
               "compute_ms": "ms", "api_calls": "calls"}


@dataclass(frozen=True)
class LineTerms:
    """Which events an invoice line counts, and how it prices them."""

    meter: str
    feature: str | None  # an add-on line counts only audio that used it
    model_name: str
    model: BillingModel
    price: Price

    def counts(self, event: LedgerEvent) -> bool:
        return event.meter == self.meter and (
            self.feature is None or self.feature in event.features)


def line_terms(line: str, prices: PriceList) -> LineTerms:
    if line not in line_names(prices):
        raise InvoiceError(f"--line: no line {line!r} (lines: "
                           f"{', '.join(line_names(prices))})")
    model = prices.audio_model
    for meter, counted in COUNTED_LINES.items():
        if line == counted.name:
            return LineTerms(meter, None, counted.model_name, counted.model,
                             prices.of_line(line))
    feature = line.removeprefix("audio+") if "+" in line else None
    return LineTerms("audio_ms", feature, model, AUDIO_MODELS[model],
                     prices.of_line(line))


@dataclass(frozen=True)
class StreamAudit:
    stream_id: str | None
    events: tuple[LedgerEvent, ...]
    total: int  # metered units, summed from the events
    billable: int  # the total, rounded by the billing model


@dataclass(frozen=True)
class LineAudit:
    """An invoice line rebuilt from raw events."""

    name: str
    terms: LineTerms
    streams: tuple[StreamAudit, ...]

    @property
    def quantity(self) -> int:
        return sum(stream.billable for stream in self.streams)

    @property
    def unrounded_amount(self) -> Decimal:
        return self.terms.price.of(self.quantity)

    @property
    def amount(self) -> Decimal:
        return to_cents(self.unrounded_amount)


# --8<-- [start:audit_trail]
def audit_line(line: str, events: Iterable[LedgerEvent],
               prices: PriceList) -> LineAudit:
    """Group the line's events by stream; round each stream's total."""
    terms = line_terms(line, prices)
    by_stream: dict[str | None, list[LedgerEvent]] = {}
    for event in events:
        if terms.counts(event):
            by_stream.setdefault(event.stream_id, []).append(event)
    streams = []
    for stream_id, stream_events in by_stream.items():
        total = sum(event.value for event in stream_events)
        streams.append(StreamAudit(stream_id, tuple(stream_events), total,
                                   terms.model(total)))
    return LineAudit(line, terms, tuple(streams))
# --8<-- [end:audit_trail]


def utc(ms: int) -> str:
    second = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{second:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def render_audit(audit: LineAudit, invoice: Invoice) -> str:
    """The audit trail of one line, ending with the invoice's amount."""
    terms, prices = audit.terms, invoice.prices
    metered = METER_UNITS[terms.meter]
    billable = terms.price.unit.billable
    out = [f"Line {audit.name} of {invoice.customer}, {invoice.period.name}:"
           f" billed {terms.model_name}",
           f"Period: {invoice.period.describe()}", ""]
    for stream in audit.streams:
        out.append(f"stream {stream.stream_id or '(none)'}")
        out += [f"  {utc(e.event_time_ms)}  {e.value:>12,} {metered:<6}"
                f"  {e.source}/{e.id}" for e in stream.events]
        events = f"{len(stream.events)} event"
        events += "" if len(stream.events) == 1 else "s"
        out.append(f"  total {stream.total:,} {metered} in {events}"
                   f" -> {stream.billable:,} {billable}")
    if not audit.streams:
        out.append("(no events in this period)")
    price = terms.price
    out += [
        "",
        f"quantity {audit.quantity:,} {billable} x {price.amount}"
        f" {prices.currency}/{price.unit.label}",
        f"  = {audit.unrounded_amount} (before rounding)",
        f"  = {audit.amount} {prices.currency} (rounded half up to cents)",
    ]
    invoiced = invoice.amount_of(audit.name)
    verdict = "matches" if invoiced == audit.amount else "DOES NOT MATCH"
    out += [f"invoice line {audit.name}: {invoiced} {prices.currency},"
            f" {verdict}",
            f"price source: {price.source}"]
    return "\n".join(out) + "\n"


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="rebuild one invoice line from the raw usage events",
        description="The audit trail of an invoice line: its events by "
        "stream, each stream's rounding, and the line's arithmetic.")
    add_common_arguments(parser)
    parser.add_argument("--line", required=True,
                        help="a line name from the invoice, like audio, "
                        "audio+diarization, characters")


def run(args: argparse.Namespace) -> int:
    """0 when the rebuilt line matches the invoice, 1 when it does not."""
    try:
        with opened_request(args) as request:
            period = request.period
            events = request.ledger.events_of(
                request.customer, period.start_ms, period.end_ms)
            audit = audit_line(args.line, events, request.prices)
            invoice = invoice_for(request.ledger, request.customer, period,
                                  request.prices)
    except (InvoiceError, PricingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(render_audit(audit, invoice), end="")
    return 0 if invoice.amount_of(audit.name) == audit.amount else 1
