"""Invoices from the ledger, and `explain` rebuilding every line."""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from ch08_metering import explain, invoice
from ch08_metering.events import Feature, Meter, UsageEvent, usage_event
from ch08_metering.explain import audit_line, render_audit
from ch08_metering.invoice import (
    InvoiceError,
    build_invoice,
    invoice_for,
    line_names,
    parse_period,
)
from ch08_metering.ledger import Ledger
from ch08_metering.pricing import (
    PRICES_DIR,
    PriceList,
    PricingError,
)

NOVEMBER = parse_period("2026-11")
DAY_3 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC).timestamp()
ACCOUNTS = """\
[tiers.growth]
max_concurrent_streams = 20
audio_seconds_per_minute = 1800

[customers.acme]
tier = "growth"
stripe_customer_id = "cus_acme"

[customers.idle]
tier = "growth"
stripe_customer_id = "cus_idle"
"""


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: pricing reads the same sums on any database."""
    return f"sqlite:///{tmp_path}/l.db"


def used(stream: str, sequence: int, value: int, *, at: float = DAY_3,
         meter: Meter = "audio_ms", features: tuple[Feature, ...] = (),
         customer: str = "acme") -> UsageEvent:
    return usage_event(stream_id=stream, sequence=sequence,
                       customer=customer, source="speech-api", meter=meter,
                       value=value, features=features, at=at,
                       series="" if meter == "audio_ms" else meter)


def a_month_of_usage() -> list[UsageEvent]:
    """One long call with two add-ons, 100 short calls, TTS and LLM;
    the calls' device time and one API call each."""
    both: tuple[Feature, ...] = ("diarization", "pii_redaction")
    events = [used("call", 0, 3_600_000, features=both),
              used("call", 1, 1_800_500, at=DAY_3 + 3600, features=both)]
    events += [used(f"short-{n}", 0, 3_200, at=DAY_3 + n)
               for n in range(100)]
    events += [used("tts", 0, 250_000, meter="characters"),
               used("llm", 0, 1_200_000, meter="tokens")]
    events += [used("call", 0, 90_000, meter="compute_ms"),
               used("call", 0, 1, meter="api_calls")]
    events += [used(f"short-{n}", 0, 500, at=DAY_3 + n, meter="compute_ms")
               for n in range(100)]
    events += [used(f"short-{n}", 0, 1, at=DAY_3 + n, meter="api_calls")
               for n in range(100)]
    return events


def command(module: ModuleType, *flags: str) -> int:
    """Run one command the way `python -m ch08_metering` would."""
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers(), "command")
    code: int = module.run(parser.parse_args(["command", *flags]))
    return code


def flags(database_url: str, accounts: Path, customer: str = "acme",
          period: str = "2026-11") -> list[str]:
    return ["--customer", customer, "--period", period,
            "--database-url", database_url, "--accounts", str(accounts)]


@pytest.fixture
def accounts(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(ACCOUNTS)
    return path


def test_a_month_is_utc_from_its_first_day_to_the_next_month() -> None:
    december = parse_period("2026-12")
    assert december.start == datetime(2026, 12, 1, tzinfo=UTC)
    assert december.end == datetime(2027, 1, 1, tzinfo=UTC)
    assert NOVEMBER.end_ms - NOVEMBER.start_ms == 30 * 86_400_000
    for bad in ("2026-13", "2026-00", "2026-1", "Nov 2026"):
        with pytest.raises(InvoiceError, match="is not a month like"):
            parse_period(bad)


def test_usage_belongs_to_the_period_of_its_event_time(
        ledger: Ledger, prices: PriceList) -> None:
    def utc(text: str) -> float:
        return datetime.fromisoformat(text).timestamp()

    ledger.ingest([
        used("october", 0, 1_000, at=utc("2026-10-31T23:59:59.999Z")),
        used("first", 0, 2_000, at=utc("2026-11-01T00:00:00.000Z")),
        used("last", 0, 4_000, at=utc("2026-11-30T23:59:59.999Z")),
        used("december", 0, 8_000, at=utc("2026-12-01T00:00:00.000Z")),
    ], now_ms=int(utc("2026-12-02T00:00Z") * 1000))  # "last" came late
    bill = invoice_for(ledger, "acme", NOVEMBER, prices)
    assert [(line.name, line.quantity) for line in bill.lines] == [
        ("audio", 6)]


def test_a_stream_metered_every_60_s_is_priced_as_one_request(
        ledger: Ledger, prices: PriceList) -> None:
    ledger.ingest([used("call", n, ms, at=DAY_3 + 60 * n)
                   for n, ms in enumerate([60_000, 60_000, 500])], now_ms=0)
    aws = replace(prices, audio_model="aws_15s_minimum")
    [audio] = invoice_for(ledger, "acme", NOVEMBER, aws).lines
    assert audio.quantity == 121  # 120.5 s, one request; not 60 + 60 + 15
    assert {a.model: a.quantity for a in audio.alternatives} == {
        "per_second": 121, "per_15s_block": 135}


def test_the_invoice_prices_every_line_and_compares_the_models(
        ledger: Ledger, prices: PriceList) -> None:
    ledger.ingest(a_month_of_usage(), now_ms=0)
    bill = invoice_for(ledger, "acme", NOVEMBER, prices)
    assert [(line.name, line.quantity, line.amount) for line in bill.lines
            ] == [
        ("audio", 5401 + 100 * 4, Decimal("0.24")),
        ("audio+diarization", 5401, Decimal("0.03")),
        ("audio+pii_redaction", 5401, Decimal("0.12")),
        ("characters", 250_000, Decimal("12.50")),
        ("tokens", 1_200_000, Decimal("3.00")),
        # 140,000 ms x 4.00/GPU hour = 0.1556; 101 calls x 0.10/1K
        ("compute", 90_000 + 100 * 500, Decimal("0.16")),
        ("api_calls", 101, Decimal("0.01")),
    ]
    audio = bill.lines[0]
    assert [(a.model, a.quantity, a.amount) for a in audio.alternatives] == [
        ("aws_15s_minimum", 5401 + 100 * 15, Decimal("0.29")),
        ("per_15s_block", 5415 + 100 * 15, Decimal("0.29")),
    ]
    assert bill.total == Decimal("16.06")
    assert bill.total_under("aws_15s_minimum") == Decimal("16.11")
    assert bill.total_under("per_second") == bill.total


def test_explain_rebuilds_every_line_of_the_invoice_exactly(
        ledger: Ledger, prices: PriceList) -> None:
    ledger.ingest(a_month_of_usage(), now_ms=0)
    ledger.ingest([used("late-feature", 0, 10_000),
                   used("late-feature", 1, 5_001, at=DAY_3 + 10,
                        features=("summarization",))], now_ms=0)
    for plan in ("per_second", "aws_15s_minimum", "per_15s_block"):
        priced = replace(prices, audio_model=plan)
        bill = invoice_for(ledger, "acme", NOVEMBER, priced)
        events = ledger.events_of("acme", NOVEMBER.start_ms,
                                  NOVEMBER.end_ms)
        for name in line_names(priced):
            audit = audit_line(name, events, priced)
            assert audit.amount == bill.amount_of(name), (plan, name)
    summarized = audit_line("audio+summarization", events, prices)
    assert summarized.quantity == 6  # 5,001 ms of the stream used it


def test_prices_must_be_in_effect_for_the_whole_period(
        prices: PriceList) -> None:
    with pytest.raises(PricingError, match="prices effective 2026-11-01 do"
                       " not cover 2026-10"):
        build_invoice("acme", parse_period("2026-10"), [], prices)


INVOICE = """\
Invoice preview: acme, 2026-11
Period: 2026-11-01T00:00Z to 2026-12-01T00:00Z (UTC, by event time)
Prices: effective 2026-11-01, USD; audio billed per_second

line                             quantity  unit price        amount USD
audio                             5,801 s  0.15/hour               0.24
  if aws_15s_minimum              6,901 s                          0.29
  if per_15s_block                6,915 s                          0.29
audio+diarization                 5,401 s  0.02/hour               0.03
  if aws_15s_minimum              5,401 s                          0.03
  if per_15s_block                5,415 s                          0.03
audio+pii_redaction               5,401 s  0.08/hour*              0.12
  if aws_15s_minimum              5,401 s                          0.12
  if per_15s_block                5,415 s                          0.12
characters                  250,000 chars  0.05/1K chars          12.50
tokens                   1,200,000 tokens  2.50/1M tokens*         3.00
compute                        140,000 ms  4.00/GPU hour*          0.16
api_calls                       101 calls  0.10/1K calls*          0.01
total                                                             16.06
  if aws_15s_minimum                                              16.11
  if per_15s_block                                                16.11
audio with add-ons: 1.62x the base audio charge (every add-on: 1.87x)
* illustrative: not a vendor price
"""


def test_the_invoice_command_prints_the_preview_table(
        ledger: Ledger, database_url: str, accounts: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ledger.ingest(a_month_of_usage(), now_ms=0)
    assert command(invoice, *flags(database_url, accounts)) == 0
    out, err = capsys.readouterr()
    assert out == INVOICE and err == ""
    assert max(len(line) for line in out.splitlines()) <= 79


def test_a_customer_without_usage_gets_a_zero_invoice(
        ledger: Ledger, database_url: str, accounts: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.ingest(a_month_of_usage(), now_ms=0)
    monkeypatch.setenv("DATABASE_URL", database_url)  # the default
    assert command(invoice, "--customer", "idle", "--period", "2026-11",
                   "--accounts", str(accounts)) == 0
    out = capsys.readouterr().out
    assert "(no usage in this period)\ntotal" in out
    assert [line.split() for line in out.splitlines()[-3:]] == [
        ["total", "0.00"], ["if", "aws_15s_minimum", "0.00"],
        ["if", "per_15s_block", "0.00"]]


@pytest.mark.parametrize(("change", "message"), [
    ({"customer": "nobody"},
     "--customer: unknown customer 'nobody' (known: acme, idle)"),
    ({"period": "2026-10"},
     "ch08_metering/prices: no price file in effect on 2026-10-01"),
    ({"period": "november"},
     "--period: 'november' is not a month like 2026-11"),
])
def test_invoice_refuses_what_it_cannot_bill_with_exit_status_2(
        ledger: Ledger, database_url: str, accounts: Path,
        capsys: pytest.CaptureFixture[str], change: dict[str, str],
        message: str) -> None:
    assert command(invoice, *flags(database_url, accounts, **change)) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ")
    assert err.endswith(f"{message}\n") and err.count("\n") == 1


def test_invoice_refuses_a_database_without_a_ledger(
        tmp_path: Path, accounts: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    empty = f"sqlite:///{tmp_path}/empty.db"
    assert command(invoice, *flags(empty, accounts)) == 2
    assert "error: --database-url: no usage ledger at sqlite:///" in (
        capsys.readouterr().err)


def test_invoice_names_a_database_it_cannot_open(
        tmp_path: Path, accounts: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    a_directory = f"sqlite:///{tmp_path}"
    assert command(invoice, *flags(a_directory, accounts)) == 2
    assert "error: --database-url: cannot open sqlite:///" in (
        capsys.readouterr().err)


def test_invoice_names_an_accounts_file_it_cannot_read(
        database_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.toml"
    assert command(invoice, *flags(database_url, missing)) == 2
    assert capsys.readouterr().err.startswith(
        "error: --accounts: [Errno 2] No such file or directory")


def test_invoice_takes_a_price_file(
        ledger: Ledger, database_url: str, accounts: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ledger.ingest([used("call", 0, 3_600_000)], now_ms=0)
    cheaper = tmp_path / "cheaper.toml"
    cheaper.write_text((PRICES_DIR / "2026-11.toml").read_text()
                       .replace("per_hour = 0.15", "per_hour = 0.10"))
    assert command(invoice, *flags(database_url, accounts),
                   "--prices", str(cheaper)) == 0
    [audio] = [line.split() for line in capsys.readouterr().out.splitlines()
               if line.startswith("audio")]
    assert audio == ["audio", "3,600", "s", "0.10/hour", "0.10"]


EXPLAIN_AUDIO = """\
Line audio of acme, 2026-11: billed per_second
Period: 2026-11-01T00:00Z to 2026-12-01T00:00Z (UTC, by event time)

stream call
  2026-11-03T09:00:00.000Z        60,000 ms      speech-api/call-0
  2026-11-03T09:01:00.000Z        60,000 ms      speech-api/call-1
  2026-11-03T09:02:00.000Z           500 ms      speech-api/call-2
  total 120,500 ms in 3 events -> 121 s
stream beep
  2026-11-03T09:05:00.000Z             1 ms      speech-api/beep-0
  total 1 ms in 1 event -> 1 s

quantity 122 s x 0.15 USD/hour
  = 0.005083333333333333333333333333 (before rounding)
  = 0.01 USD (rounded half up to cents)
invoice line audio: 0.01 USD, matches
price source: https://www.assemblyai.com/pricing, Universal-2; seen 2026
"""


def test_explain_prints_the_audit_trail_of_a_line(
        ledger: Ledger, database_url: str, accounts: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ledger.ingest([used("call", n, ms, at=DAY_3 + 60 * n)
                   for n, ms in enumerate([60_000, 60_000, 500])]
                  + [used("beep", 0, 1, at=DAY_3 + 300)], now_ms=0)
    assert command(explain, *flags(database_url, accounts),
                   "--line", "audio") == 0
    assert capsys.readouterr().out == EXPLAIN_AUDIO


def test_explain_shows_an_add_on_line_from_its_own_events(
        ledger: Ledger, database_url: str, accounts: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ledger.ingest(a_month_of_usage(), now_ms=0)
    assert command(explain, *flags(database_url, accounts),
                   "--line", "audio+pii_redaction") == 0
    out = capsys.readouterr().out
    assert "stream short-" not in out
    assert "  total 5,400,500 ms in 2 events -> 5,401 s\n" in out
    assert "invoice line audio+pii_redaction: 0.12 USD, matches\n" in out
    assert out.endswith("price source: illustrative: not a vendor price\n")


def test_explain_says_when_the_invoice_disagrees_with_the_events(
        ledger: Ledger, prices: PriceList) -> None:
    ledger.ingest([used("call", 0, 3_600_000)], now_ms=0)
    events = ledger.events_of("acme", NOVEMBER.start_ms, NOVEMBER.end_ms)
    audit = audit_line("audio", events, prices)
    emptied = replace(invoice_for(ledger, "acme", NOVEMBER, prices),
                      lines=())
    assert "invoice line audio: 0.00 USD, DOES NOT MATCH\n" in (
        render_audit(audit, emptied))


def test_explain_of_a_line_without_usage_is_zero_like_the_invoice(
        ledger: Ledger, database_url: str, accounts: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert command(explain, *flags(database_url, accounts),
                   "--line", "tokens") == 0
    out = capsys.readouterr().out
    assert "(no events in this period)" in out
    assert "invoice line tokens: 0.00 USD, matches" in out


def test_explain_refuses_a_line_the_invoice_cannot_have(
        ledger: Ledger, database_url: str, accounts: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert command(explain, *flags(database_url, accounts),
                   "--line", "video") == 2
    assert capsys.readouterr().err == (
        "error: --line: no line 'video' (lines: audio, audio+diarization,"
        " audio+pii_redaction, audio+summarization, characters, tokens,"
        " compute, api_calls)\n")

