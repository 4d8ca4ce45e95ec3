"""Prometheus recording and alerting rules from an SLO spec.

Chapter 11, "Monitoring and alerting on SLO burn rate". For every SLO
the generator records the error ratio over each window of its alert
tiers (5m, 30m, 1h, 2h, 6h, 1d and 3d by default) and over the SLO
period; then Sloth's metadata recordings (objective, budget, burn
rates, remaining budget, `sloth_slo_info`), so Sloth's Grafana
dashboards read these rules as they read Sloth's; then a page and a
ticket alert, each true while both windows of any of its tiers burn
faster than the tier allows. A ratio is recorded only while there is
traffic, so an idle service has no ratio at all, rather than NaN, and
cannot fire or poison the period's ratio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ch11_slo.burn_rates import BurnRate, decimal_text
from ch11_slo.durations import format_duration
from ch11_slo.spec import WINDOW, AlertSpec, EventsSli, ServiceSpec, SloSpec

Rule = dict[str, Any]
GENERATOR = "ch11_slo"
MODES = {"prometheus/v1": "cli-gen-prom", "sloth.slok.dev/v1": "cli-gen-k8s",
         "openslo/v1alpha": "cli-gen-openslo"}
SLO_ID_LABELS = ("sloth_id", "sloth_service", "sloth_slo")


@dataclass(frozen=True)
class RuleOptions:
    """Sloth's generate flags: labels for every SLO, and which rules."""

    extra_labels: Mapping[str, str] = field(default_factory=dict)
    recordings: bool = True
    alerts: bool = True


def ratio_name(window: int) -> str:
    return f"slo:sli_error:ratio_rate{format_duration(window)}"


def with_window(query: str, window: int) -> str:
    return WINDOW.sub(format_duration(window), query)


def slo_labels(spec: ServiceSpec, slo: SloSpec,
               options: RuleOptions) -> dict[str, str]:
    """The labels of every recording of `slo`, but its window."""
    return {**spec.labels, **slo.labels, **options.extra_labels,
            "sloth_id": spec.slo_id(slo),
            "sloth_service": spec.service, "sloth_slo": slo.name}


def selector(labels: Mapping[str, str]) -> str:
    """The SLO's identity as a series selector: id, service and SLO."""
    pairs = ", ".join(f'{key}="{labels[key]}"' for key in SLO_ID_LABELS)
    return f"{{{pairs}}}"


def ratio_expr(slo: SloSpec, window: int) -> str:
    """The SLI's error ratio over `window`, with no sample (never NaN)
    when there is no traffic."""
    if isinstance(slo.sli, EventsSli):
        error, total = (with_window(query, window) for query in (
            slo.sli.error_query, slo.sli.total_query))
        # Dividing by a filtered total leaves no sample when the total
        # is at or below the minimum rate: no NaN, no alert on no traffic.
        least = decimal_text(slo.min_request_rate)
        return f"({error})\n/\n(({total}) > {least})\n"
    # A raw ratio of 0/0 is NaN; NaN >= 0 is false, so it is dropped.
    return f"({with_window(slo.sli.error_ratio_query, window)})\n>= 0\n"


def recording(name: str, expr: str, labels: Mapping[str, str]) -> Rule:
    return {"record": name, "expr": expr, "labels": dict(labels)}


def sli_recordings(spec: ServiceSpec, slo: SloSpec,
                   labels: Mapping[str, str]) -> list[Rule]:
    """The ratio over every window the tiers read, then over the
    period (unless the period is one of those windows)."""
    rules = [recording(ratio_name(window), ratio_expr(slo, window),
                       {**labels, "sloth_window": format_duration(window)})
             for window in slo.windows]
    if spec.period not in slo.windows:
        rules += period_recordings(spec.period, slo, labels)
    return rules


def event_recordings(slo: SloSpec, labels: Mapping[str, str]) -> list[Rule]:
    """An events SLI's errors and total over its shortest window, each
    a rate, which the period's ratio sums."""
    if not isinstance(slo.sli, EventsSli):
        return []
    short = slo.windows[0]
    window = {**labels, "sloth_window": format_duration(short)}
    return [recording(event_rate_name(kind, short),
                      with_window(query, short) + "\n", window)
            for kind, query in (("error", slo.sli.error_query),
                                ("total", slo.sli.total_query))]


def event_rate_name(kind: str, window: int) -> str:
    return f"slo:sli_{kind}_events:rate{format_duration(window)}"


def period_recordings(period: int, slo: SloSpec,
                      labels: Mapping[str, str]) -> list[Rule]:
    period_labels = {**labels, "sloth_window": format_duration(period)}
    return [*event_recordings(slo, labels),
            recording(ratio_name(period), period_ratio(period, slo, labels),
                      period_labels)]


# --8<-- [start:remaining_budget]
def period_ratio(period: int, slo: SloSpec, labels: Mapping[str, str]) -> str:
    """Errors over events, each summed over the period. Sloth averages
    5m ratios: one 0/0 in a traffic gap makes that NaN for a period, and
    a quiet hour counts as much as a busy one."""
    short = slo.windows[0]
    over = f"{selector(labels)}[{format_duration(period)}]"
    if not isinstance(slo.sli, EventsSli):  # no events to weigh by
        return f"avg_over_time({ratio_name(short)}{over})\n"
    errors, total = (f"sum_over_time({event_rate_name(kind, short)}{over})"
                     for kind in ("error", "total"))
    return f"{errors}\n/\n({total} > 0)\n"


def budget_left(period: int, slo: SloSpec,
                labels: Mapping[str, str]) -> list[Rule]:
    """Burn rates and the budget left: no sample while a ratio has none,
    and none for a budget of 0 (an objective of 100%), not +Inf."""
    ids = selector(labels)
    on = f"/ on({', '.join(SLO_ID_LABELS)}) group_left()"
    budget = f"(slo:error_budget:ratio{ids} > 0)"

    def burn(window: int) -> str:
        return f"{ratio_name(window)}{ids}\n{on}\n{budget}\n"

    return [
        recording("slo:current_burn_rate:ratio", burn(slo.windows[0]),
                  labels),
        recording("slo:period_burn_rate:ratio", burn(period), labels),
        recording("slo:period_error_budget_remaining:ratio",
                  f"1 - slo:period_burn_rate:ratio{ids}", labels)]
# --8<-- [end:remaining_budget]


def metadata_recordings(spec: ServiceSpec, slo: SloSpec,
                        labels: Mapping[str, str]) -> list[Rule]:
    """Sloth's metadata, in its order, as its dashboards read it."""
    info = {**labels, "sloth_mode": MODES[spec.form],
            "sloth_objective": decimal_text(slo.objective * 100),
            "sloth_spec": spec.form, "sloth_version": GENERATOR}
    days = Fraction(spec.period, 86_400)
    return [
        recording("slo:objective:ratio",
                  f"vector({decimal_text(slo.objective)})", labels),
        recording("slo:error_budget:ratio",
                  f"vector({decimal_text(1 - slo.objective)})", labels),
        recording("slo:time_period:days", f"vector({decimal_text(days)})",
                  labels),
        *budget_left(spec.period, slo, labels),
        recording("sloth_slo_info", "vector(1)", info),
    ]


# --8<-- [start:multiwindow_condition]
def tier_condition(ids: str, rate: BurnRate) -> str:
    """PromQL that holds while both windows of a tier burn too fast."""
    short = burning(ids, rate.tier.short_window, rate.threshold)
    long = burning(ids, rate.tier.long_window, rate.threshold)
    return f"(\n  {short}\n  and\n  {long}\n)"


def burning(ids: str, window: int, threshold: Fraction) -> str:
    """One window's error ratio over the threshold (exact: 0.0144)."""
    # Without sloth_window both windows carry the same labels, so `and`
    # matches them, and the alert keeps one identity whichever tier
    # fires. A window with no traffic has no ratio, so it never fires.
    return (f"max without (sloth_window) ({ratio_name(window)}{ids}"
            f" > {decimal_text(threshold)})")
# --8<-- [end:multiwindow_condition]


def default_annotations(severity: str) -> dict[str, str]:
    """Sloth's title and summary, which the spec's annotations
    override."""
    slo = "{{$labels.sloth_service}} {{$labels.sloth_slo}}"
    return {"title": f"({severity}) {slo} SLO error budget burn rate is"
                     " too fast.",
            "summary": f"{slo} SLO error budget burn rate is over"
                       " expected."}


def alert_rule(slo: SloSpec, identity: Mapping[str, str], severity: str,
               alert: AlertSpec) -> Rule | None:
    """One alert (page or ticket): any of its tiers burning. No `for:`:
    the short window already holds it back from a brief spike. None
    when every tier of the severity was left out as unable to fire."""
    conditions = [tier_condition(selector(identity), rate)
                  for rate in slo.burn_rates.rates
                  if rate.tier.severity == severity]
    if not conditions:
        return None
    return {
        "alert": slo.alert_name,
        "expr": "\nor\n".join(conditions) + "\n",
        # The SLO's identity, which the alert inherits anyway, keeps
        # two SLOs' alerts of one name distinct rules in one file.
        "labels": {**slo.alert_labels, **alert.labels,
                   **{key: identity[key] for key in SLO_ID_LABELS},
                   "sloth_severity": severity},
        "annotations": {**default_annotations(severity),
                        **slo.alert_annotations, **alert.annotations},
    }


def alert_rules(slo: SloSpec, identity: Mapping[str, str]) -> list[Rule]:
    alerts = (alert_rule(slo, identity, severity, alert)
              for severity, alert in (("page", slo.page),
                                      ("ticket", slo.ticket))
              if alert.enabled)
    return [alert for alert in alerts if alert is not None]


def rule_groups(spec: ServiceSpec,
                options: RuleOptions | None = None) -> list[Rule]:
    """One rule group per SLO of `spec` that has any rules."""
    groups = [rule_group(spec, slo, options or RuleOptions())
              for slo in spec.slos]
    return [group for group in groups if group["rules"]]


# --8<-- [start:rule_generation]
def rule_group(spec: ServiceSpec, slo: SloSpec,
               options: RuleOptions) -> Rule:
    """The SLO's ratios and Sloth's metadata, then its page and ticket
    alerts on those ratios."""
    labels = slo_labels(spec, slo, options)
    recordings = (sli_recordings(spec, slo, labels)
                  + metadata_recordings(spec, slo, labels)
                  if options.recordings else [])
    alerts = alert_rules(slo, labels) if options.alerts else []
    # A group runs its rules in order: the alerts read the ratios
    # recorded at the same evaluation, not the one before.
    return {"name": f"sloth-slo-{labels['sloth_id']}",
            "rules": recordings + alerts}
# --8<-- [end:rule_generation]
