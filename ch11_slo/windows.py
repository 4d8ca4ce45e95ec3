"""Alert windows per SLO period, in Sloth's `AlertWindows` format.

Chapter 11, "Monitoring and alerting on SLO burn rate". By default an
SLO of any period gets the workbook's four tiers (2% in 1h and 5% in 6h
page; 10% in 1d and 10% in 3d open a ticket), with factors worked out
for its period. A directory of Sloth windows files replaces them, one
file per period, as `sloth generate --slo-period-windows-path` reads
it: each gives every tier's share of the budget and both its windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import yaml

from ch11_slo.burn_rates import DEFAULT_TIERS, AlertTier
from ch11_slo.durations import format_duration, parse_duration
from ch11_slo.invalid import InvalidField

API_VERSION = "sloth.slok.dev/v1"
KIND = "AlertWindows"
TIER_KEYS = (("page", "quick"), ("page", "slow"),
             ("ticket", "quick"), ("ticket", "slow"))


@dataclass(frozen=True)
class WindowCatalogue:
    """The tiers of each SLO period; with no files, the defaults for
    every period."""

    by_period: Mapping[int, tuple[AlertTier, ...]] = field(
        default_factory=dict)
    source: str = ""

    def tiers(self, period: int, field_name: str) -> tuple[AlertTier, ...]:
        if not self.by_period:
            return DEFAULT_TIERS
        if period not in self.by_period:
            known = ", ".join(format_duration(p)
                              for p in sorted(self.by_period))
            raise InvalidField(field_name, (
                f"{format_duration(period)} has no alert windows in"
                f" {self.source} (it has {known})"))
        return self.by_period[period]


def read_catalogue(directory: Path | None) -> WindowCatalogue:
    """Every windows file (*.yaml, *.yml) under `directory`, by period;
    two different files for one period are refused. No directory: the
    default windows alone."""
    if directory is None:
        return WindowCatalogue()
    if not directory.is_dir():
        raise InvalidField("--slo-period-windows-path", (
            f"{directory} is not a directory"))
    by_period: dict[int, tuple[AlertTier, ...]] = {}
    for path in sorted(directory.rglob("*")):
        if path.suffix.lower() not in (".yaml", ".yml"):
            continue
        period, tiers = parse_windows(path.read_text(encoding="utf-8"),
                                      str(path))
        if by_period.get(period, tiers) != tiers:
            raise InvalidField(str(path), (
                f"a second, different set of windows for"
                f" {format_duration(period)}"))
        by_period[period] = tiers
    if not by_period:
        raise InvalidField("--slo-period-windows-path", (
            f"{directory} holds no windows files"))
    return WindowCatalogue(by_period, str(directory))


def parse_windows(text: str, source: str) -> tuple[int, tuple[AlertTier,
                                                             ...]]:
    """The period and tiers of one windows file."""
    document = yaml.safe_load(text)
    if not isinstance(document, dict) or (
            document.get("apiVersion"), document.get("kind")) != (
            API_VERSION, KIND):
        raise InvalidField(source, (
            f"not a windows file (apiVersion {API_VERSION}, kind {KIND})"))
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise InvalidField(f"{source}: spec", "missing")
    period = parse_duration(spec.get("sloPeriod"), f"{source}: sloPeriod")
    tiers = []
    for severity, speed in TIER_KEYS:
        where = f"{source}: spec.{severity}.{speed}"
        window = (spec.get(severity) or {}).get(speed)
        if not isinstance(window, dict):
            raise InvalidField(where, "missing")
        try:
            share = Fraction(str(window.get("errorBudgetPercent"))) / 100
        except (ValueError, ZeroDivisionError):
            raise InvalidField(f"{where}.errorBudgetPercent", (
                "must be a percentage of the budget")) from None
        tiers.append(AlertTier(
            severity, share,
            parse_duration(window.get("longWindow"), f"{where}.longWindow"),
            parse_duration(window.get("shortWindow"),
                           f"{where}.shortWindow")))
    return period, tuple(tiers)
