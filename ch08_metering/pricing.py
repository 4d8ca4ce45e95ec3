"""Pricing: dated price files, billing models, and stacked add-ons.

Chapter 8, "Billing models comparison" and "Feature-based pricing
stacking". Prices live in a dated TOML file (`prices/`), each with its
source, because vendor prices change. A billing model turns one
request's metered total into billable units: per second, AWS's 15-second
minimum, 15-second blocks, per character, per token, per millisecond
of device time, per call. It is applied to a
stream's whole total, never to the events that metered it, so a stream
reported every 60 s is one request. Money is `Decimal`, never a float,
and is rounded to cents once: at the invoice line.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Protocol, get_args

from ch08_metering.events import Feature

PRICES_DIR = Path(__file__).with_name("prices")
CENT = Decimal("0.01")
ILLUSTRATIVE = "illustrative:"


class PricingError(ValueError):
    """A price file, or usage, that cannot be priced; says what and where."""


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


# --8<-- [start:billing_models]
def per_second(ms: int) -> int:
    """Deepgram: pro-rated, a request rounded up to 1 s."""
    return ceil_div(ms, 1000)


def aws_15s_minimum(ms: int) -> int:
    """AWS Transcribe: 1-second increments, 15 s minimum per request."""
    seconds = per_second(ms)
    return max(seconds, 15) if seconds else 0  # no audio, no request


def per_15s_block(ms: int) -> int:
    """Every started 15-second block is billed in full."""
    return ceil_div(ms, 15_000) * 15
# --8<-- [end:billing_models]


def per_character(characters: int) -> int:
    return characters  # ElevenLabs: every character, no minimum


def per_token(tokens: int) -> int:
    return tokens  # OpenAI: every token, no minimum


def per_millisecond(ms: int) -> int:
    """Device time: every millisecond, no rounding up to a second (a
    stream's decodes take milliseconds, a second would bill it 100x)."""
    return ms


def per_call(calls: int) -> int:
    return calls


BillingModel = Callable[[int], int]  # a request's total -> billable units
AUDIO_MODELS: Mapping[str, BillingModel] = {
    "per_second": per_second,
    "aws_15s_minimum": aws_15s_minimum,
    "per_15s_block": per_15s_block,
}


@dataclass(frozen=True)
class CountedLine:
    """An invoice line billed by count: no audio model, no add-ons."""

    name: str  # the line, and the price list's entry
    model_name: str
    model: BillingModel


# meter -> its line; audio_ms is priced by the plan's audio model instead
COUNTED_LINES: Mapping[str, CountedLine] = {
    "characters": CountedLine("characters", "per_character", per_character),
    "tokens": CountedLine("tokens", "per_token", per_token),
    "compute_ms": CountedLine("compute", "per_millisecond", per_millisecond),
    "api_calls": CountedLine("api_calls", "per_call", per_call),
}
FEATURES: tuple[str, ...] = get_args(Feature)


@dataclass(frozen=True)
class Unit:
    """What a price is quoted per, and the billable unit it counts."""

    key: str  # the price's key in the price file
    per: int  # billable units the price is for
    label: str
    billable: str  # the billable unit, as a quantity shows it


PER_HOUR = Unit("per_hour", 3600, "hour", "s")
PER_1K = Unit("per_1k", 1000, "1K chars", "chars")
PER_1M = Unit("per_1m", 1_000_000, "1M tokens", "tokens")
PER_DEVICE_HOUR = Unit("per_hour", 3_600_000, "GPU hour", "ms")
PER_1K_CALLS = Unit("per_1k", 1000, "1K calls", "calls")


@dataclass(frozen=True)
class Price:
    amount: Decimal  # in the price list's currency, per `unit.per`
    unit: Unit
    source: str

    def of(self, quantity: int) -> Decimal:
        """The price of `quantity` billable units, not rounded to cents."""
        return quantity * self.amount / self.unit.per

    @property
    def illustrative(self) -> bool:
        return self.source.startswith(ILLUSTRATIVE)


@dataclass(frozen=True)
class PriceList:
    effective: date
    currency: str
    audio_model: str
    audio: Price
    features: Mapping[str, Price]
    characters: Price
    tokens: Price
    compute: Price
    api_calls: Price

    def add_on(self, feature: str) -> Price:
        if feature not in self.features:
            raise PricingError(f"no price for feature {feature!r}")
        return self.features[feature]

    def of_line(self, line: str) -> Price:
        """An invoice line's price: `audio`, `audio+FEATURE`, or a line
        billed by count (`COUNTED_LINES`)."""
        if line == "audio":
            return self.audio
        if line.startswith("audio+"):
            return self.add_on(line.removeprefix("audio+"))
        counted: dict[str, Price] = {
            "characters": self.characters, "tokens": self.tokens,
            "compute": self.compute, "api_calls": self.api_calls}
        if line not in counted:
            raise PricingError(f"no price for line {line!r}")
        return counted[line]


def to_cents(amount: Decimal) -> Decimal:
    """Round half up to cents: done once per invoice line, never before."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_price(raw: object, unit: Unit, where: str) -> Price:
    table = require_table(raw, where, {unit.key, "source"})
    raw_amount = table.get(unit.key)
    if raw_amount is None:
        raise PricingError(f"{where}.{unit.key}: missing")
    if (isinstance(raw_amount, bool)
            or not isinstance(raw_amount, int | Decimal)
            or not Decimal(raw_amount).is_finite()):
        raise PricingError(f"{where}.{unit.key}: {raw_amount!r} is not a"
                           " number")
    amount = Decimal(raw_amount)
    if amount < 0:
        raise PricingError(f"{where}.{unit.key}: {amount} is negative")
    source = table.get("source")
    if not isinstance(source, str) or not (
            source.startswith(ILLUSTRATIVE) or "https://" in source):
        raise PricingError(
            f"{where}.source: say where the price comes from: a vendor page"
            f" (https://...) and when it was seen, or \"{ILLUSTRATIVE}"
            " not a vendor price\"")
    return Price(amount, unit, source)


def require_table(raw: object, where: str,
                  allowed: set[str]) -> Mapping[str, Any]:
    if raw is None:
        raise PricingError(f"{where}: missing (every meter and feature"
                           " needs a price)")
    if not isinstance(raw, dict):
        raise PricingError(f"{where}: expected a table")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise PricingError(f"{key}: unknown key (expected"
                           f" {', '.join(sorted(allowed))})")
    return raw


def parse_prices(raw: Mapping[str, Any]) -> PriceList:
    """Validate a parsed price file (floats parsed as `Decimal`)."""
    top = require_table(raw, "", {
        "effective", "currency", "audio_model", "audio", "features",
        "characters", "tokens", "compute", "api_calls"})
    effective = top.get("effective")
    if not isinstance(effective, date) or isinstance(effective, datetime):
        raise PricingError("effective: expected a date, like 2026-11-01")
    currency = top.get("currency")
    if not isinstance(currency, str) or len(currency) != 3:
        raise PricingError("currency: expected a code, like \"USD\"")
    model = top.get("audio_model", "per_second")
    if model not in AUDIO_MODELS:
        raise PricingError(f"audio_model: unknown billing model {model!r}"
                           f" (expected {', '.join(AUDIO_MODELS)})")
    features = require_table(top.get("features"), "features",
                             set(FEATURES))
    return PriceList(
        effective=effective,
        currency=currency,
        audio_model=model,
        audio=parse_price(top.get("audio"), PER_HOUR, "audio"),
        features={f: parse_price(features.get(f), PER_HOUR,
                                 f"features.{f}") for f in FEATURES},
        characters=parse_price(top.get("characters"), PER_1K,
                               "characters"),
        tokens=parse_price(top.get("tokens"), PER_1M, "tokens"),
        compute=parse_price(top.get("compute"), PER_DEVICE_HOUR,
                            "compute"),
        api_calls=parse_price(top.get("api_calls"), PER_1K_CALLS,
                              "api_calls"),
    )


def load_prices(path: Path) -> PriceList:
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file, parse_float=Decimal)
        return parse_prices(raw)
    except OSError as error:
        raise PricingError(f"{path}: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, PricingError) as error:
        raise PricingError(f"{path}: {error}") from None


def prices_in_effect(on: date, directory: Path = PRICES_DIR) -> PriceList:
    """The price file with the latest `effective` date on or before `on`."""
    lists = [load_prices(path) for path in sorted(directory.glob("*.toml"))]
    in_effect = [p for p in lists if p.effective <= on]
    if not in_effect:
        raise PricingError(f"{directory}: no price file in effect on {on}")
    return max(in_effect, key=lambda p: p.effective)


class Metered(Protocol):
    """Usage of one stream: a ledger event, or a sum of them."""

    @property
    def meter(self) -> str: ...
    @property
    def features(self) -> tuple[str, ...]: ...
    @property
    def stream_id(self) -> str | None: ...
    @property
    def value(self) -> int: ...


@dataclass(frozen=True)
class StreamTotal:
    """All of one stream's usage of a meter, and how much used each
    feature (a stream may switch a feature on halfway)."""

    meter: str
    stream_id: str | None
    value: int
    feature_values: Mapping[str, int]


def stream_totals(usage: Iterable[Metered]) -> list[StreamTotal]:
    """Usage summed per meter and stream, whatever its features.

    Usage without a stream id is summed as one request of its meter.
    """
    totals: dict[tuple[str, str | None], int] = {}
    by_feature: dict[tuple[str, str | None], dict[str, int]] = {}
    for item in usage:
        key = (item.meter, item.stream_id)
        totals[key] = totals.get(key, 0) + item.value
        features = by_feature.setdefault(key, {})
        for feature in item.features:
            features[feature] = features.get(feature, 0) + item.value
    return [StreamTotal(meter, stream_id, value, by_feature[meter, stream_id])
            for (meter, stream_id), value in totals.items()]


@dataclass(frozen=True)
class Charge:
    """One stream's share of one invoice line, in billable units."""

    line: str  # "audio", "audio+diarization", "characters", ...
    stream_id: str | None
    quantity: int
    price: Price


# --8<-- [start:price_stacking]
def audio_charges(stream: StreamTotal, prices: PriceList,
                  model: BillingModel) -> list[Charge]:
    """The base audio price, plus one add-on per feature the stream used.

    Add-ons stack (the AssemblyAI pattern): each is charged at its own
    hourly rate, on top of the base, so a stream with diarization and
    PII redaction pays three rates. Every total is rounded by the
    billing model once, for the whole stream.
    """
    charges = [Charge("audio", stream.stream_id, model(stream.value),
                      prices.audio)]
    for feature, ms in sorted(stream.feature_values.items()):
        charges.append(Charge(f"audio+{feature}", stream.stream_id,
                              model(ms), prices.add_on(feature)))
    return charges
# --8<-- [end:price_stacking]


def stream_charges(stream: StreamTotal, prices: PriceList,
                   audio_model: str) -> list[Charge]:
    """What one stream is charged; features add on to audio only."""
    if stream.meter == "audio_ms":
        return audio_charges(stream, prices, AUDIO_MODELS[audio_model])
    counted = COUNTED_LINES.get(stream.meter)
    if counted is None:
        raise PricingError(f"no price for meter {stream.meter!r}")
    return [Charge(counted.name, stream.stream_id,
                   counted.model(stream.value), prices.of_line(counted.name))]

