"""Billing models at their edges, stacked add-ons, and the price file."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ch08_metering.ledger import StreamUsage
from ch08_metering.pricing import (
    AUDIO_MODELS,
    FEATURES,
    PER_HOUR,
    PRICES_DIR,
    Charge,
    Price,
    PriceList,
    PricingError,
    StreamTotal,
    audio_charges,
    load_prices,
    parse_prices,
    per_character,
    per_second,
    per_token,
    prices_in_effect,
    stream_charges,
    stream_totals,
    to_cents,
)

PRICE_FILE = PRICES_DIR / "2026-11.toml"
EDGES_MS = [0, 1, 14_999, 15_000, 15_001, 61_000]


@pytest.mark.parametrize(("model", "billable_s"), [
    ("per_second", [0, 1, 15, 15, 16, 61]),
    ("aws_15s_minimum", [0, 15, 15, 15, 16, 61]),
    ("per_15s_block", [0, 15, 15, 15, 30, 75]),
])
def test_audio_models_round_a_request_at_the_edges(
        model: str, billable_s: list[int]) -> None:
    assert [AUDIO_MODELS[model](ms) for ms in EDGES_MS] == billable_s


def test_characters_and_tokens_are_billed_one_by_one() -> None:
    assert [per_character(n) for n in (0, 1, 999, 1001)] == [0, 1, 999, 1001]
    assert [per_token(n) for n in (0, 1, 999, 1001)] == [0, 1, 999, 1001]


def test_money_is_exact_until_it_is_rounded_half_up_to_cents() -> None:
    price = Price(Decimal("0.15"), PER_HOUR, "illustrative: test")
    assert price.of(3600) == Decimal("0.15")
    assert price.of(120) == Decimal("0.005")  # exactly half a cent
    assert to_cents(price.of(120)) == Decimal("0.01")  # not banker's 0.00
    assert to_cents(price.of(119)) == Decimal("0.00")


def test_add_ons_stack_on_the_base_price_each_at_its_own_rate(
        prices: PriceList) -> None:
    stream = StreamTotal("audio_ms", "call", 3_600_000,
                         {"pii_redaction": 3_600_000,
                          "diarization": 3_600_000})
    charges = audio_charges(stream, prices, per_second)
    assert [(c.line, c.quantity) for c in charges] == [
        ("audio", 3600), ("audio+diarization", 3600),
        ("audio+pii_redaction", 3600)]
    hour = sum(c.price.of(c.quantity) for c in charges)
    assert hour == Decimal("0.15") + Decimal("0.02") + Decimal("0.08")


def test_a_stream_is_rounded_once_even_when_a_feature_starts_halfway(
        ) -> None:
    halves = [StreamUsage("audio_ms", (), "call", 30_000, 1),
              StreamUsage("audio_ms", ("diarization",), "call", 30_500, 1)]
    [stream] = stream_totals(halves)
    assert stream == StreamTotal("audio_ms", "call", 60_500,
                                 {"diarization": 30_500})
    charges = audio_charges(stream, load_prices(PRICE_FILE), per_second)
    assert [(c.line, c.quantity) for c in charges] == [
        ("audio", 61), ("audio+diarization", 31)]  # not 30 + 31 for audio


def test_characters_and_tokens_have_their_own_lines_and_no_add_ons(
        prices: PriceList) -> None:
    tts = StreamTotal("characters", "tts", 1500, {"diarization": 1500})
    llm = StreamTotal("tokens", "llm", 2_000_000, {})
    assert stream_charges(tts, prices, "per_second") == [
        Charge("characters", "tts", 1500, prices.characters)]
    assert stream_charges(llm, prices, "per_second") == [
        Charge("tokens", "llm", 2_000_000, prices.tokens)]


def test_usage_without_a_price_is_an_error_not_free(
        prices: PriceList) -> None:
    with pytest.raises(PricingError, match="no price for meter 'video_ms'"):
        stream_charges(StreamTotal("video_ms", "v", 1, {}), prices,
                       "per_second")
    without_diarization = replace(prices, features={})
    with pytest.raises(PricingError,
                       match="no price for feature 'diarization'"):
        stream_charges(StreamTotal("audio_ms", "s", 1, {"diarization": 1}),
                       without_diarization, "per_second")


def test_the_price_file_states_only_sourced_vendor_prices(
        prices: PriceList) -> None:
    assert (prices.effective, prices.currency, prices.audio_model) == (
        date(2026, 11, 1), "USD", "per_second")
    vendor = {
        "audio": (prices.audio, "0.15", "assemblyai.com"),
        "diarization": (prices.features["diarization"], "0.02",
                        "assemblyai.com"),
        "characters": (prices.characters, "0.05", "elevenlabs.io"),
    }
    for price, amount, site in vendor.values():
        assert price.amount == Decimal(amount) and not price.illustrative
        assert f"https://www.{site}" in price.source or (
            f"https://{site}" in price.source)
        assert "seen 2026" in price.source
    made_up = [prices.features["pii_redaction"],
               prices.features["summarization"], prices.tokens]
    assert all(p.source == "illustrative: not a vendor price"
               for p in made_up)
    assert set(prices.features) == set(FEATURES)


def test_the_price_file_in_effect_is_the_latest_one_started(
        tmp_path: Path) -> None:
    text = PRICE_FILE.read_text()
    (tmp_path / "2026-11.toml").write_text(text)
    (tmp_path / "2027-01.toml").write_text(
        text.replace("effective = 2026-11-01", "effective = 2027-01-01")
        .replace("per_hour = 0.15", "per_hour = 0.12"))
    assert prices_in_effect(date(2026, 12, 1), tmp_path).audio.amount == (
        Decimal("0.15"))
    assert prices_in_effect(date(2027, 1, 1), tmp_path).audio.amount == (
        Decimal("0.12"))
    with pytest.raises(PricingError, match="no price file in effect on"
                       " 2026-10-01"):
        prices_in_effect(date(2026, 10, 1), tmp_path)
    assert prices_in_effect(date(2026, 11, 1)).effective == (
        date(2026, 11, 1))


@pytest.mark.parametrize(("old", "new", "message"), [
    ("audio_model = \"per_second\"", "audio_model = \"per_minute\"",
     "audio_model: unknown billing model 'per_minute' (expected"
     " per_second, aws_15s_minimum, per_15s_block)"),
    ("[characters]", "[characters_]", "characters_: unknown key"),
    ("per_hour = 0.15", "per_hr = 0.15",
     "audio.per_hr: unknown key (expected per_hour, source)"),
    ("per_1k = 0.05", "per_1k = -0.05", "characters.per_1k: -0.05 is"
     " negative"),
    ("per_1m = 2.50", "per_1m = \"2.50\"", "tokens.per_1m: '2.50' is not"
     " a number"),
    ("per_1m = 2.50", "per_1m = nan", "tokens.per_1m: Decimal('NaN') is"
     " not a number"),
    ("per_1m = 2.50", "per_1m = true", "tokens.per_1m: True is not a"
     " number"),
    ("source = \"https://www.assemblyai.com/pricing, Universal-2;"
     " seen 2026\"", "", "audio.source: say where the price comes from"),
    ("https://elevenlabs.io/pricing", "elevenlabs pricing page",
     "characters.source: say where the price comes from"),
    ("effective = 2026-11-01", "effective = \"2026-11-01\"",
     "effective: expected a date, like 2026-11-01"),
    ("effective = 2026-11-01", "effective = 2026-11-01T00:00:00Z",
     "effective: expected a date"),
    ("currency = \"USD\"", "currency = \"dollars\"",
     "currency: expected a code, like \"USD\""),
    ("[features.diarization]\nper_hour = 0.02", "[features.translation]"
     "\nper_hour = 0.02", "features.translation: unknown key"),
    ("per_hour = 0.15", "", "audio.per_hour: missing"),
    ("currency = \"USD\"", "currency = USD",
     "Invalid value (at line "),
])
def test_a_bad_price_file_is_refused_with_the_field_at_fault(
        tmp_path: Path, old: str, new: str, message: str) -> None:
    text = PRICE_FILE.read_text()
    assert old in text
    path = tmp_path / "prices.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(PricingError) as raised:
        load_prices(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_a_price_file_missing_a_feature_or_a_meter_is_refused(
        tmp_path: Path) -> None:
    text = PRICE_FILE.read_text()
    start = text.index("[features.summarization]")
    end = text.index("[characters]")
    path = tmp_path / "prices.toml"
    path.write_text(text[:start] + text[end:])
    with pytest.raises(PricingError,
                       match=r"features\.summarization: missing"):
        load_prices(path)
    path.write_text(text[:text.index("[tokens]")])
    with pytest.raises(PricingError, match="tokens: missing"):
        load_prices(path)


def test_a_price_that_is_not_a_table_is_refused() -> None:
    raw = tomllib.loads(PRICE_FILE.read_text(), parse_float=Decimal)
    raw["audio"] = Decimal("0.15")
    with pytest.raises(PricingError, match=r"^audio: expected a table$"):
        parse_prices(raw)


def test_a_missing_price_file_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match=r"nowhere\.toml: No such file"):
        load_prices(tmp_path / "nowhere.toml")
