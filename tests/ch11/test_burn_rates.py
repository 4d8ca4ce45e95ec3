"""Burn-rate factors, thresholds, detection and reset times, exactly."""

from __future__ import annotations

from fractions import Fraction

import pytest

from ch11_slo.burn_rates import (
    DEFAULT_TIERS,
    AlertTier,
    burn_rate,
    burn_rate_table,
    decimal_text,
    parse_objective,
)
from ch11_slo.durations import format_duration, parse_duration
from ch11_slo.invalid import InvalidField

DAY = 86_400
SLO = Fraction(999, 1000)


def factors(period_days: int) -> list[Fraction]:
    table = burn_rate_table(SLO, period_days * DAY)
    return [rate.factor for rate in table.rates]


def detections(period_days: int) -> list[Fraction]:
    table = burn_rate_table(SLO, period_days * DAY)
    return [rate.detection for rate in table.rates]


# Every expected value below is worked out by hand from the SRE
# workbook's definitions, not with the module's code: burn rate =
# budget share * period / long window; the error ratio an alert needs
# is burn rate * (1 - SLO); at 99.9% the budget is 0.001.


def test_factors_follow_from_budget_share_period_and_window() -> None:
    # The workbook's table for 99.9% over 30 days (720 h): 2% in 1 h is
    # 0.02 * 720 / 1 = 14.4x, 5% in 6 h is 0.05 * 720 / 6 = 6x, 10% in
    # 1 d is 0.1 * 30 / 1 = 3x and 10% in 3 d is 0.1 * 30 / 3 = 1x.
    assert factors(30) == [Fraction("14.4"), 6, 3, 1]
    # 28 days (672 h): 0.02 * 672 = 13.44, 0.05 * 672 / 6 = 5.6,
    # 0.1 * 28 = 2.8 and 0.1 * 28 / 3 = 2.8 / 3 = 14/15.
    assert factors(28) == [Fraction("13.44"), Fraction("5.6"),
                           Fraction("2.8"), Fraction(14, 15)]
    # 7 days (168 h): 0.02 * 168 = 3.36, 0.05 * 168 / 6 = 1.4,
    # 0.1 * 7 = 0.7 and 0.1 * 7 / 3 = 7/30.
    assert factors(7) == [Fraction("3.36"), Fraction("1.4"),
                          Fraction("0.7"), Fraction(7, 30)]


def test_thresholds_are_exact_where_floats_are_not() -> None:
    assert (1 - 0.999) * 14.4 != 0.0144  # 0.01440000000000001
    fast = burn_rate(DEFAULT_TIERS[0], SLO, 30 * DAY)
    assert decimal_text(fast.threshold) == "0.0144"  # 0.001 * 14.4
    ticket = burn_rate(DEFAULT_TIERS[3], SLO, 28 * DAY)
    # 0.001 * 14/15 = 0.000933..., rounded to 15 significant digits.
    assert decimal_text(ticket.threshold) == "0.000933333333333333"


def test_detection_at_total_outage_matches_the_workbook() -> None:
    # At 100% errors the alert fires after (1 - SLO) / error_ratio *
    # window * burn rate: 0.001 * 3600 s * 14.4 = 51.84 s (the
    # workbook's ~52 s), 0.001 * 21600 s * 6 = 129.6 s (2.16 min),
    # 0.001 * 86400 s * 3 = 259.2 s and 0.001 * 259200 s * 1 = 259.2 s
    # (4.32 min): both ticket tiers spend 10% of the same budget.
    assert detections(30) == [Fraction("51.84"), Fraction("129.6"),
                              Fraction("259.2"), Fraction("259.2")]
    # Over 28 days: 0.001 * 3600 s * 13.44 = 48.384 s, 0.001 * 21600 s
    # * 5.6 = 120.96 s and 0.001 * 86400 s * 2.8 = 0.001 * 259200 s *
    # 14/15 = 241.92 s.
    assert detections(28) == [Fraction("48.384"), Fraction("120.96"),
                              Fraction("241.92"), Fraction("241.92")]


def test_alert_resets_with_its_short_window_not_its_long_one() -> None:
    # A window full of errors falls below the threshold after (1 -
    # threshold) of it once the errors stop. 1h/5m at 30 days: (1 -
    # 0.0144) * 300 s = 295.68 s (4.93 min) for the short window, and
    # 0.9856 * 3600 s = 3548.16 s for the long one.
    fast, slow, quick_ticket, ticket = burn_rate_table(
        SLO, 30 * DAY).rates
    assert fast.reset == Fraction("295.68")
    assert fast.long_reset == Fraction("3548.16")
    assert fast.reset < fast.long_reset / 10
    # 6h/30m: (1 - 0.006) * 1800 s = 1789.2 s; 1d/2h: (1 - 0.003) *
    # 7200 s = 7178.4 s; 3d/6h: (1 - 0.001) * 21600 s = 21578.4 s
    # (5.994 h).
    assert (slow.reset, quick_ticket.reset, ticket.reset) == (
        Fraction("1789.2"), Fraction("7178.4"), Fraction("21578.4"))
    # 1h/5m at 28 days, threshold 0.01344: 0.98656 * 300 s = 295.968 s.
    assert burn_rate(DEFAULT_TIERS[0], SLO, 28 * DAY).reset == Fraction(
        "295.968")


def test_a_factor_below_one_is_a_warning() -> None:
    table = burn_rate_table(SLO, 28 * DAY)
    (warning,) = table.warnings
    assert "ticket tier (10% in 3d): factor 0.933333333333333" in warning
    assert burn_rate_table(SLO, 30 * DAY).warnings == ()


def test_a_tier_that_can_never_fire_is_left_out_with_a_warning() -> None:
    # The highest burn rate is 1 / (1 - SLO): 14.4x needs SLO > 93.06%.
    assert len(burn_rate_table(parse_objective("93.06"), 30 * DAY).rates) \
        == 4
    table = burn_rate_table(parse_objective("93.05"), 30 * DAY)
    assert [r.factor for r in table.rates] == [6, 3, 1]
    (warning,) = table.warnings
    assert warning.startswith("page tier (2% in 1h) left out")
    assert "14.4x over 30d can never fire" in warning
    # At 80% (at most 5x) both page tiers go, and the tickets stay.
    table = burn_rate_table(parse_objective("80"), 30 * DAY)
    assert {r.tier.severity for r in table.rates} == {"ticket"}
    assert len(table.warnings) == 2


def test_an_objective_of_100_has_no_budget_and_is_a_warning() -> None:
    table = burn_rate_table(parse_objective(100, allow_full=True), 30 * DAY)
    assert [r.threshold for r in table.rates] == [0, 0, 0, 0]
    assert table.warnings[-1].startswith(
        "an objective of 100% leaves no error budget")
    with pytest.raises(InvalidField, match="below 100"):
        parse_objective(100)


@pytest.mark.parametrize("value", ["100", "0", "-1", "100.5", "abc", "",
                                   "nan", "inf", True])
def test_objective_must_be_a_percentage_above_0_and_below_100(
    value: object,
) -> None:
    with pytest.raises(InvalidField) as refused:
        parse_objective(value)
    assert refused.value.field == "objective"
    assert str(refused.value).startswith("objective: ")


def test_objective_is_read_exactly() -> None:
    assert parse_objective("99.9") == Fraction(999, 1000)
    assert parse_objective(99.95) == Fraction(9995, 10000)  # float, as YAML
    assert parse_objective(99) == Fraction(99, 100)


def test_windows_longer_than_the_period_are_refused() -> None:
    with pytest.raises(InvalidField, match="shorter than the 3d") as refused:
        burn_rate_table(SLO, 2 * DAY)
    assert refused.value.field == "period"


def test_short_windows_need_two_scrapes() -> None:
    burn_rate_table(SLO, 30 * DAY, scrape_interval=150)  # 5m = 2 x 2.5m
    with pytest.raises(InvalidField, match="fewer than two") as refused:
        burn_rate_table(SLO, 30 * DAY, scrape_interval=151)
    assert refused.value.field == "scrape_interval"


@pytest.mark.parametrize(("tier", "field"), [
    (AlertTier("pager", Fraction(1, 50), 3_600, 300), "severity"),
    (AlertTier("page", Fraction(0), 3_600, 300), "budget_fraction"),
    (AlertTier("page", Fraction(3, 2), 3_600, 300), "budget_fraction"),
    (AlertTier("page", Fraction(1, 50), 3_600, 3_600), "short_window"),
    (AlertTier("page", Fraction(1, 50), 3_600, 0), "short_window"),
])
def test_malformed_tiers_are_refused(tier: AlertTier, field: str) -> None:
    with pytest.raises(InvalidField) as refused:
        burn_rate_table(SLO, 30 * DAY, (tier,))
    assert refused.value.field == field
    with pytest.raises(InvalidField, match="at least one"):
        burn_rate_table(SLO, 30 * DAY, ())


@pytest.mark.parametrize(("text", "seconds", "printed"), [
    ("30d", 30 * DAY, "30d"), ("28d", 28 * DAY, "28d"),
    ("7d", 7 * DAY, "7d"), ("1w", 7 * DAY, "7d"), ("12h", 43_200, "12h"),
    ("90m", 5_400, "1h30m"), ("1h30m", 5_400, "1h30m"), ("45s", 45, "45s"),
])
def test_durations_read_and_print_as_prometheus_writes_them(
    text: str, seconds: int, printed: str,
) -> None:
    assert parse_duration(text, "period") == seconds
    assert format_duration(seconds) == printed


@pytest.mark.parametrize("text", ["30 days", "30", "1.5d", "", "0d",
                                  "d", "30D", "1m1h", "-1d", 30])
def test_unknown_period_syntax_is_refused(text: object) -> None:
    with pytest.raises(InvalidField) as refused:
        parse_duration(text, "period")
    assert str(refused.value).startswith("period: ")


def test_only_positive_durations_print() -> None:
    with pytest.raises(ValueError, match="not a positive duration"):
        format_duration(0)
