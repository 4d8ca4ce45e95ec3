"""Prometheus recording and alerting rules from an SLO spec.

Chapter 11, "Monitoring and alerting on SLO burn rate". For every SLO
the generator records the error ratio over each window an alert tier
reads (5m, 30m, 1h, 6h and 3d with the default tiers), then writes a
page and a ticket alert, each true while both windows of any of its
tiers burn faster than the tier allows: the multiwindow, multi-burn-rate
alerts of the SRE workbook, with Sloth's rule and label names. A ratio
is recorded only while there is traffic, so an idle service has no
ratio at all, rather than NaN, and cannot fire.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import yaml

from ch11_slo.burn_rates import BurnRate, decimal_text
from ch11_slo.durations import format_duration
from ch11_slo.spec import WINDOW, AlertSpec, ServiceSpec, SloSpec

Rule = dict[str, Any]


def ratio_name(window: int) -> str:
    return f"slo:sli_error:ratio_rate{format_duration(window)}"


def recording_rule(spec: ServiceSpec, slo: SloSpec, window: int) -> Rule:
    """The SLO's error ratio over `window`, absent without traffic."""
    error, total = (WINDOW.sub(format_duration(window), query)
                    for query in (slo.error_query, slo.total_query))
    # Dividing by a filtered total leaves no sample when the total is
    # at or below the minimum rate: no NaN, and no alert on no traffic.
    least = decimal_text(slo.min_request_rate)
    return {
        "record": ratio_name(window),
        "expr": f"({error})\n/\n(({total}) > {least})\n",
        "labels": {
            **spec.labels,
            **slo.labels,
            "sloth_id": f"{spec.service}-{slo.name}",
            "sloth_service": spec.service,
            "sloth_slo": slo.name,
            "sloth_window": format_duration(window),
        },
    }


# --8<-- [start:multiwindow_condition]
def tier_condition(slo_id: str, rate: BurnRate) -> str:
    """PromQL that holds while both windows of a tier burn too fast."""
    short = burning(slo_id, rate.tier.short_window, rate.threshold)
    long = burning(slo_id, rate.tier.long_window, rate.threshold)
    return f"(\n  {short}\n  and\n  {long}\n)"


def burning(slo_id: str, window: int, threshold: Fraction) -> str:
    """One window's error ratio over the threshold (exact: 0.0144)."""
    # Without sloth_window both windows carry the same labels, so `and`
    # matches them, and the alert keeps one identity whichever tier
    # fires. A window with no traffic has no ratio, so it never fires.
    return (f"max without (sloth_window) ({ratio_name(window)}"
            f'{{sloth_id="{slo_id}"}} > {decimal_text(threshold)})')
# --8<-- [end:multiwindow_condition]


def alert_rule(
    slo: SloSpec, slo_id: str, severity: str, alert: AlertSpec
) -> Rule:
    """One alert (page or ticket): any of its tiers burning. No `for:`:
    the short window already holds it back from a brief spike."""
    conditions = [tier_condition(slo_id, rate)
                  for rate in slo.burn_rates.rates
                  if rate.tier.severity == severity]
    rule: Rule = {
        "alert": slo.alert_name,
        "expr": "\nor\n".join(conditions) + "\n",
        "labels": {**slo.alert_labels, **alert.labels,
                   "sloth_severity": severity},
    }
    annotations = {**slo.alert_annotations, **alert.annotations}
    if annotations:
        rule["annotations"] = annotations
    return rule


def rule_groups(spec: ServiceSpec) -> list[Rule]:
    """One rule group per SLO of `spec`."""
    return [rule_group(spec, slo) for slo in spec.slos]


def windows_read(slo: SloSpec) -> list[int]:
    """Every window an alert tier of `slo` reads, shortest first."""
    return sorted({window for rate in slo.burn_rates.rates
                   for window in (rate.tier.short_window,
                                  rate.tier.long_window)})


# --8<-- [start:rule_generation]
def rule_group(spec: ServiceSpec, slo: SloSpec) -> Rule:
    """The SLO's error ratio over every window its tiers read, then its
    page and ticket alerts on those ratios."""
    slo_id = f"{spec.service}-{slo.name}"
    recordings = [recording_rule(spec, slo, window)
                  for window in windows_read(slo)]
    alerts = [alert_rule(slo, slo_id, severity, alert)
              for severity, alert in (("page", slo.page),
                                      ("ticket", slo.ticket))
              if alert.enabled]
    # A group runs its rules in order: the alerts read the ratios
    # recorded at the same evaluation, not the one before.
    return {"name": f"sloth-slo-{slo_id}", "rules": recordings + alerts}
# --8<-- [end:rule_generation]


class RulesDumper(yaml.SafeDumper):
    """YAML as people write rules: multi-line PromQL as block text."""


def represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text,
                                   style=style)


RulesDumper.add_representer(str, represent_text)


def render_rules(groups: list[Rule], source: str) -> str:
    """The rules file: a header naming its source, then the groups."""
    body: Mapping[str, object] = {"groups": groups}
    header = (
        f"# Generated by `python -m ch11_slo rules` from {source}.\n"
        "# Edit the spec and regenerate; do not edit this file.\n"
    )
    return header + yaml.dump(body, Dumper=RulesDumper, sort_keys=False,
                              width=1_000)
