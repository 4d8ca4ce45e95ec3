"""`simulate`: a seeded month of usage, metered as streams are, and the
invoices it makes: dollars, billing models apart, add-ons stacked."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from ch08_metering.__main__ import main
from ch08_metering.invoice import (
    add_on_multiplier,
    every_add_on_multiplier,
    invoice_for,
    parse_period,
)
from ch08_metering.ledger import Ledger
from ch08_metering.pricing import PriceList
from ch08_metering.synthetic import INTERVAL_MS, PROFILES, synthetic_month
from tests.ch08.test_invoice import used

NOVEMBER = parse_period("2026-11")
REPO = Path(__file__).resolve().parents[2]


def test_the_same_seed_gives_the_same_month_another_seed_another() -> None:
    def month(seed: int) -> list[tuple[str, int]]:
        return [(e.id, e.data.value) for e in synthetic_month(NOVEMBER, seed)]

    assert month(7) == month(7)
    assert month(7) != month(8)


def test_streams_are_metered_a_minute_at_a_time_within_the_month() -> None:
    events = synthetic_month(NOVEMBER, 7)
    assert {e.subject for e in events} == set(PROFILES)
    calls: dict[str, list[int]] = defaultdict(list)
    for event in events:
        assert NOVEMBER.start <= event.time < NOVEMBER.end
        if event.data.meter == "audio_ms":
            calls[event.data.stream_id or ""].append(event.data.value)
    assert len(calls) > 1_000
    for values in calls.values():
        # every minute full but the last, which may be shorter
        assert all(v == INTERVAL_MS for v in values[:-1])
        assert 0 < values[-1] <= INTERVAL_MS


def test_the_contact_centre_diarizes_every_call_and_works_weekdays(
) -> None:
    events = [e for e in synthetic_month(NOVEMBER, 7)
              if e.subject == "acme"]
    assert all("diarization" in e.data.features for e in events)
    weekday_calls = {e.data.stream_id for e in events
                     if e.time.weekday() < 5}
    weekend_calls = {e.data.stream_id for e in events
                     if e.time.weekday() >= 5}
    assert len(weekday_calls) > 4 * len(weekend_calls)


def test_simulate_writes_the_month_once_and_the_invoices_show_dollars(
        ledger: Ledger, database_url: str, prices: PriceList,
        capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--period", "2026-11", "--database-url", database_url]
    assert main(["simulate", *flags]) == 0
    first = capsys.readouterr().out
    assert main(["simulate", *flags]) == 0
    again = capsys.readouterr().out
    assert " 0 already there" in first and " 0 new," in again
    centre = invoice_for(ledger, "acme", NOVEMBER, prices)
    agent = invoice_for(ledger, "demo", NOVEMBER, prices)
    assert centre.total > Decimal("50") and agent.total > Decimal("50")
    # short calls pay for rounding up; long ones barely notice
    assert agent.total_under("per_15s_block") > agent.total * Decimal(
        "1.004")
    assert centre.amount_of("audio+diarization") > 0
    assert agent.amount_of("characters") > 0


def test_bad_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--period", "2026-13"]) == 2
    assert "not a month" in capsys.readouterr().out


def test_the_add_on_multiplier_is_the_stacked_rate_over_the_base(
        ledger: Ledger, prices: PriceList) -> None:
    hour = 3_600_000
    ledger.ingest([used("diarized", 0, hour, features=("diarization",)),
                   used("plain", 0, hour, customer="beta")], now_ms=0)
    diarized = invoice_for(ledger, "acme", NOVEMBER, prices)
    plain = invoice_for(ledger, "beta", NOVEMBER, prices)
    # $0.15 an hour, and diarization's $0.02 on the same hour
    assert add_on_multiplier(diarized) == Decimal("0.17") / Decimal("0.15")
    assert add_on_multiplier(plain) is None
    # every add-on of the November prices: 0.15 + 0.02 + 0.08 + 0.03
    assert every_add_on_multiplier(prices) == (
        Decimal("0.28") / Decimal("0.15"))


def test_the_readme_shows_what_the_commands_print(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's month in dollars is the commands' output, verbatim."""
    flags = ["--period", "2026-11", "--database-url",
             f"sqlite:///{tmp_path}/month.sqlite3"]
    printed = []
    for command in (["simulate"], ["invoice", "--customer", "acme"],
                    ["invoice", "--customer", "demo"]):
        assert main([*command, *flags]) == 0
        printed.append(capsys.readouterr().out)
    readme = (REPO / "ch08_metering" / "README.md").read_text()
    for output in printed:
        assert f"```text\n{output}```" in readme
