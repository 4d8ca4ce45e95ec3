"""Sloth's Grafana dashboards read our rules as they read Sloth's.

Chapter 11, "Monitoring and alerting on SLO burn rate". Sloth's two
dashboards (grafana.com 14348, "Sloth detailed", and 14643, "Sloth high
level") find SLOs by the labels of `slo:objective:ratio` and
`sloth_slo_info`, and plot the recorded ratios, burn rates, budget left
and alerts. Their queries, with the dashboard variables filled in, run
here in promtool over the generated rules and a steady burn: each
returns the value worked out by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

from tests.ch11.generated_rules import expect, write_rules
from tests.ch11.promtool import counter, promtool_passes

SPEC = """\
version: prometheus/v1
service: checkout
slos:
  - name: requests
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(checkout_request_errors_total[{{.window}}]))
        total_query: sum(rate(checkout_requests_total[{{.window}}]))
    alerting:
      name: CheckoutRequestsBurn
      page_alert:
        labels: {severity: page}
      ticket_alert:
        labels: {severity: ticket}
  - name: latency
    objective: 99
    sli:
      events:
        error_query: sum(rate(checkout_slow_requests_total[{{.window}}]))
        total_query: sum(rate(checkout_requests_total[{{.window}}]))
    alerting:
      name: CheckoutLatencyBurn
      page_alert:
        labels: {severity: page}
      ticket_alert:
        labels: {severity: ticket}
"""
SERVICE, BURNING, IDLE = "checkout", "requests", "latency"

# The dashboards' queries, with their variables: $service, $slo,
# ${sli_window} and ${min_burning_rate}.
SERVICES = "label_values(slo:objective:ratio, sloth_service)"
SLOS = 'label_values(slo:objective:ratio{sloth_service="$service"}, sloth_slo)'
IDS = 'sloth_service="$service", sloth_slo="$slo"'
BURNING_SLOS = "slo:current_burn_rate:ratio > ${min_burning_rate}"
OBJECTIVE = f"slo:objective:ratio{{{IDS}}}"
SLI = (f"1 - (max(slo:sli_error:ratio_rate${{sli_window}}{{{IDS}}})"
       " OR on() vector(0))")
CURRENT_BURN_RATE = f"slo:current_burn_rate:ratio{{{IDS}}} or on() vector(0)"
BUDGET_LEFT = (f"slo:period_error_budget_remaining:ratio{{{IDS}}}"
               " or on() vector(1)")
BURNING_NOW = f"slo:current_burn_rate:ratio{{{IDS}}} > 0"
ALERTS = ('max(ALERTS{sloth_service="$service", sloth_slo="$slo",'
          ' sloth_severity="$severity"}) or on() vector(0)')
MONTH_BUDGET_LEFT = (
    '1-(sum_over_time((slo:sli_error:ratio_rate1h{sloth_service="$service",'
    'sloth_slo="$slo"} * on() group_left() (month() == bool vector(1)))'
    '[32d:1h]) / on(sloth_id) (slo:error_budget:ratio{sloth_service='
    '"$service",sloth_slo="$slo"} *on() group_left() (24 *'
    ' days_in_month())))')
SLOS_PER_SERVICE = "count(sloth_slo_info) by (sloth_service)"
BUDGET_LEFT_PER_SLO = ("min(slo:period_error_budget_remaining:ratio)"
                       " by (sloth_service, sloth_slo)")
LABEL_VALUES = re.compile(r"label_values\((?P<metric>.+), (?P<label>\w+)\)")
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")


def filled(query: str, slo: str = BURNING, **variables: str) -> str:
    """`query` with the dashboard's variables set."""
    values = {"service": SERVICE, "slo": slo, "min_burning_rate": "1",
              **variables}
    for name, value in values.items():
        query = query.replace(f"${{{name}}}", value).replace(f"${name}",
                                                              value)
    return query


def label_values(query: str) -> str:
    """Grafana's label_values(metric, label) as PromQL: a sample for
    each value of the label, counting the series that carry it."""
    match = LABEL_VALUES.fullmatch(query)
    assert match is not None, query
    return f"count by ({match['label']}) ({match['metric']})"


def ids(slo: str, window: str | None = None) -> dict[str, str]:
    labels = {"sloth_id": f"{SERVICE}-{slo}", "sloth_service": SERVICE,
              "sloth_slo": slo}
    return {**labels, "sloth_window": window} if window else labels


def alerts(slo: str) -> list[Mapping[str, object]]:
    return [{
        "exp_labels": {**ids(slo), "severity": s, "sloth_severity": s},
        "exp_annotations": {
            "title": f"({s}) {SERVICE} {slo} SLO error budget burn rate is"
                     " too fast.",
            "summary": f"{SERVICE} {slo} SLO error budget burn rate is over"
                       " expected."},
    } for s in ("page", "ticket")]


def test_every_dashboard_query_reads_a_steady_burn(tmp_path: Path) -> None:
    # A day of 2,400 requests per 5 min, 48 (2%) failing, none slow;
    # rules every 5 min, the dashboards read at 12 h and at 1 d.
    steps = 24 * 12
    series = [
        {"series": "checkout_requests_total",
         "values": counter((2400, steps))},
        {"series": "checkout_request_errors_total",
         "values": counter((48, steps))},
        {"series": "checkout_slow_requests_total",
         "values": counter((0, steps))},
    ]
    # By hand: every window's error ratio, the period's too, is
    # 48 / 2,400 = 0.02, so the SLI is 0.98 in each; the burn rate is
    # 0.02 / 0.001 = 20, and the period's budget left 1 - 20 = -19 (the
    # ratio so far, over the budget). The latency SLO burns 0 of its
    # 0.01 and keeps all its budget. The month panel sums the hourly
    # 1h ratios since the start of January (1970: promtool's clock),
    # 0.02 for each hour from 1 h, over the month's budget,
    # 0.001 * 24 * 31 = 0.744: 1 - 20 * hours / 744, 1 - 10/31 = 21/31
    # at 12 h and 1 - 20/31 = 11/31 at 1 d.
    ratio, budget = Fraction(2, 100), Fraction(1, 1000)
    burn_rate = ratio / budget
    tests = []
    for at, hours in (("12h", 12), ("1d", 24)):
        tests += [
            expect(label_values(filled(SERVICES)), at,
                   ({"sloth_service": SERVICE}, 2)),
            expect(label_values(filled(SLOS)), at,
                   ({"sloth_slo": BURNING}, 1), ({"sloth_slo": IDLE}, 1)),
            expect(filled(BURNING_SLOS), at,
                   (ids(BURNING, "5m"), burn_rate)),
            expect(filled(OBJECTIVE), at, (ids(BURNING), Fraction(999, 1000))),
            *(expect(filled(SLI, sli_window=w), at, ({}, 1 - ratio))
              for w in WINDOWS),
            expect(filled(CURRENT_BURN_RATE), at,
                   (ids(BURNING, "5m"), burn_rate)),
            expect(filled(CURRENT_BURN_RATE, IDLE), at,
                   (ids(IDLE, "5m"), 0)),
            expect(filled(BUDGET_LEFT), at,
                   (ids(BURNING, "30d"), 1 - burn_rate)),
            expect(filled(BUDGET_LEFT, IDLE), at, (ids(IDLE, "30d"), 1)),
            expect(filled(BURNING_NOW), at, (ids(BURNING, "5m"), burn_rate)),
            expect(filled(BURNING_NOW, IDLE), at),
            *(expect(filled(ALERTS, slo, severity=severity), at, ({}, firing))
              for severity in ("page", "ticket")
              for slo, firing in ((BURNING, 1), (IDLE, 0))),
            # One-to-one on(sloth_id) keeps only sloth_id.
            expect(filled(MONTH_BUDGET_LEFT), at, (
                {"sloth_id": f"{SERVICE}-{BURNING}"},
                1 - burn_rate * hours / (24 * 31))),
            expect(SLOS_PER_SERVICE, at, ({"sloth_service": SERVICE}, 2)),
            expect(BUDGET_LEFT_PER_SLO, at,
                   ({"sloth_service": SERVICE, "sloth_slo": BURNING},
                    1 - burn_rate),
                   ({"sloth_service": SERVICE, "sloth_slo": IDLE}, 1)),
        ]
    promtool_passes(
        tmp_path, [write_rules(tmp_path, SPEC, SERVICE)], "5m", {
            "interval": "5m",
            "input_series": series,
            "promql_expr_test": tests,
            # The alerts carry the SLO's labels, which ALERTS keeps.
            "alert_rule_test": [
                {"eval_time": "1d", "alertname": "CheckoutRequestsBurn",
                 "exp_alerts": alerts(BURNING)},
                {"eval_time": "1d", "alertname": "CheckoutLatencyBurn",
                 "exp_alerts": []},
            ],
        })
