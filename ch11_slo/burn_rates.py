"""Error budgets and burn rates, in exact arithmetic.

Chapter 11, "Error budgets for ML systems" and "Monitoring and alerting
on SLO burn rate". An alert tier says how much of the period's error
budget may burn within a long window before someone is told (the SRE
workbook's 2% in 1 hour, 5% in 6 hours, 10% in 3 days); the burn-rate
factor follows from that and the SLO period, never from a constant
tuned for 30 days. Fractions keep every threshold exact (0.0144, not
0.014399999999999998), and every tier is checked: one that can never
fire, or whose short window holds fewer than two scrapes, is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

from ch11_slo.durations import format_duration
from ch11_slo.invalid import InvalidField

DEFAULT_SCRAPE_INTERVAL = 60
HOUR = 3_600
DAY = 86_400


@dataclass(frozen=True)
class AlertTier:
    """Alert when `budget_fraction` of the budget burns in `long_window`
    seconds and the `short_window` shows it is still burning."""

    severity: str  # "page" or "ticket"
    budget_fraction: Fraction
    long_window: int
    short_window: int

    def describe(self) -> str:
        share = decimal_text(self.budget_fraction * 100)
        return f"{self.severity} tier ({share}% in {self.long_label})"

    @property
    def long_label(self) -> str:
        return format_duration(self.long_window)

    @property
    def short_label(self) -> str:
        return format_duration(self.short_window)


# --8<-- [start:four_window_ticket]
# The SRE workbook's tiers, with Sloth's windows. Each short window is
# a twelfth of its long one: the alert clears soon after errors stop.
DEFAULT_TIERS = (
    AlertTier("page", Fraction(2, 100), HOUR, 5 * 60),
    AlertTier("page", Fraction(5, 100), 6 * HOUR, 30 * 60),
    # Two ticket tiers, each a tenth of the budget. Over 30 days the
    # day-long one burns at 3x and opens a ticket within hours of a
    # moderate burn; the three-day one, at 1x, catches a slow leak
    # that would spend the budget by the end of the period.
    AlertTier("ticket", Fraction(10, 100), DAY, 2 * HOUR),
    AlertTier("ticket", Fraction(10, 100), 3 * DAY, 6 * HOUR),
)
# --8<-- [end:four_window_ticket]


@dataclass(frozen=True)
class BurnRate:
    """One tier worked out for one SLO: all times in seconds."""

    tier: AlertTier
    factor: Fraction
    threshold: Fraction  # the error ratio both windows must exceed
    detection: Fraction  # first error to alert, at 100% errors
    reset: Fraction  # last error to alert cleared, via the short window
    long_reset: Fraction  # last error to long-window condition cleared


# --8<-- [start:burn_rate_factor]
def burn_rate(tier: AlertTier, objective: Fraction, period: int) -> BurnRate:
    """Work out `tier` for an SLO of `objective` (0.999) over `period`."""
    budget = 1 - objective  # the error ratio the SLO allows
    # Spending `budget_fraction` of the period's budget in one long
    # window burns this many times faster than the period can sustain:
    # 2% of 30 days in 1 hour is 0.02 * 720 h / 1 h = 14.4.
    factor = tier.budget_fraction * Fraction(period, tier.long_window)
    threshold = budget * factor
    return BurnRate(
        tier=tier,
        factor=factor,
        threshold=threshold,
        # At 100% errors a clean window's ratio grows by 1/window each
        # second: (1 - SLO) / error_ratio * window * burn rate.
        detection=threshold * tier.long_window,
        # Once errors stop, a window's ratio falls below the threshold
        # after (1 - threshold) of it; the short window clears first.
        reset=(1 - threshold) * tier.short_window,
        long_reset=(1 - threshold) * tier.long_window,
    )
# --8<-- [end:burn_rate_factor]


@dataclass(frozen=True)
class BurnRateTable:
    objective: Fraction
    period: int
    scrape_interval: int
    rates: tuple[BurnRate, ...]
    warnings: tuple[str, ...]


def parse_objective(value: object, field: str = "objective",
                    allow_full: bool = False) -> Fraction:
    """An objective in percent (99.9) as an exact ratio (999/1000).
    `allow_full` accepts 100%, as Sloth's specs may say it."""
    try:
        percent = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        raise InvalidField(
            field, f"{value!r} is not a number (a percentage like 99.9)"
        ) from None
    within = percent <= 100 if allow_full else percent < 100
    if not percent > 0 or not within:
        most = "at most" if allow_full else "below"
        raise InvalidField(
            field, f"{value!r} must be above 0 and {most} 100 (percent)")
    return percent / 100


def burn_rate_table(
    objective: Fraction,
    period: int,
    tiers: Sequence[AlertTier] = DEFAULT_TIERS,
    scrape_interval: int = DEFAULT_SCRAPE_INTERVAL,
) -> BurnRateTable:
    """Every tier worked out and checked: InvalidField for one that is
    malformed; a tier that can never fire is left out, and it and one
    that alerts on a sustainable burn get a warning."""
    if not tiers:
        raise InvalidField("tiers", "at least one alert tier is needed")
    rates = []
    warnings = []
    for tier in tiers:
        check_windows(tier, period, scrape_interval)
        rate = burn_rate(tier, objective, period)
        if rate.threshold >= 1:
            most = decimal_text(1 / (1 - objective))
            warnings.append(
                f"{tier.describe()} left out: at"
                f" {decimal_text(objective * 100)}% the highest possible"
                f" burn rate is {most}x, so its"
                f" {decimal_text(rate.factor)}x over"
                f" {format_duration(period)} can never fire")
            continue
        if rate.factor < 1:
            warnings.append(
                f"{tier.describe()}: factor {decimal_text(rate.factor)} is"
                f" below 1 over {format_duration(period)}, so it alerts on"
                " a burn that would not spend the budget within the"
                " period; lengthen its window or raise its share"
            )
        rates.append(rate)
    if objective == 1:
        warnings.append(
            "an objective of 100% leaves no error budget: every tier"
            " fires on the first error, and no burn rate is recorded")
    return BurnRateTable(objective, period, scrape_interval, tuple(rates),
                         tuple(warnings))


def check_windows(tier: AlertTier, period: int, scrape_interval: int) -> None:
    if tier.severity not in ("page", "ticket"):
        raise InvalidField("severity", (
            f"{tier.severity!r} is not page or ticket"))
    if not 0 < tier.budget_fraction <= 1:
        raise InvalidField("budget_fraction", (
            f"{tier.describe()}: the share of the budget must be above 0"
            " and at most 1"))
    if not 0 < tier.short_window < tier.long_window:
        raise InvalidField("short_window", (
            f"{tier.describe()}: the short window must be shorter than"
            " the long one"))
    if tier.long_window > period:
        raise InvalidField("period", (
            f"{format_duration(period)} is shorter than the"
            f" {tier.long_label} window of the {tier.describe()}"))
    if tier.short_window < 2 * scrape_interval:
        raise InvalidField("scrape_interval", (
            f"{format_duration(scrape_interval)} leaves fewer than two"
            f" scrapes in the {tier.short_label} short window of the"
            f" {tier.describe()}; rate() needs two"))


def decimal_text(value: Fraction, digits: int = 15) -> str:
    """`value` in decimal: exact when it has at most `digits`
    significant digits (0.0144), else rounded to `digits` (0.9333...)."""
    with localcontext() as context:
        context.prec = digits
        exact = Decimal(value.numerator) / Decimal(value.denominator)
    text = format(exact, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def shown(value: Fraction, digits: int = 7) -> str:
    """`value` for a table: marked with ~ where it had to be rounded."""
    text = decimal_text(value, digits)
    return text if Fraction(text) == value else f"~{text}"


def duration_text(seconds: Fraction) -> str:
    """A time for people: 51.84s, 2.16m, 5.994h."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{decimal_text(seconds / size, 6)}{unit}"
    return f"{decimal_text(seconds, 6)}s"


TABLE_NOTES = """
error ratio: the threshold both windows must exceed. detection: from the
first error to the alert, at 100% errors. reset: from the last error to
the alert clearing. ~: rounded.
"""


def format_table(table: BurnRateTable) -> str:
    """The table the `burn-rates` command prints."""
    budget = 1 - table.objective
    lines = [
        f"SLO {decimal_text(table.objective * 100)}% over"
        f" {format_duration(table.period)}: error budget"
        f" {decimal_text(budget)}"
        f" ({duration_text(budget * table.period)} of total outage)",
        "",
    ]
    header = ("severity", "long", "short", "factor", "error ratio",
              "budget", "detection", "reset")
    rows = [header] + [
        (r.tier.severity, r.tier.long_label, r.tier.short_label,
         shown(r.factor), shown(r.threshold),
         f"{decimal_text(r.tier.budget_fraction * 100)}%",
         duration_text(r.detection), duration_text(r.reset))
        for r in table.rates
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths,
                                                       strict=True)).rstrip()
              for row in rows]
    return "\n".join(lines) + "\n" + TABLE_NOTES


def table_record(table: BurnRateTable) -> dict[str, object]:
    """The table as JSON-ready data; numbers are the nearest floats to
    the exact values, so they print short (0.0144)."""
    return {
        "objective_percent": float(table.objective * 100),
        "period": format_duration(table.period),
        "period_s": table.period,
        "error_budget": float(1 - table.objective),
        "scrape_interval": format_duration(table.scrape_interval),
        "tiers": [
            {
                "severity": r.tier.severity,
                "long_window": r.tier.long_label,
                "short_window": r.tier.short_label,
                "factor": float(r.factor),
                "error_ratio_threshold": float(r.threshold),
                "budget_consumed": float(r.tier.budget_fraction),
                "detection_s": float(r.detection),
                "reset_s": float(r.reset),
                "long_window_reset_s": float(r.long_reset),
            }
            for r in table.rates
        ],
        "warnings": list(table.warnings),
    }
