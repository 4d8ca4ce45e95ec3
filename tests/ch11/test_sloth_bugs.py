"""Three known faults of Sloth's rules, absent from ours, in promtool.

Chapter 11, "Monitoring and alerting on SLO burn rate". Sloth averages
the 5-minute error ratio over the period, so one gap in traffic (0/0,
NaN) blanks the period's ratio and the budget left for a whole period,
and light hours weigh as much as busy ones; it writes one YAML document
per spec of a file, of which Prometheus loads the first; and without
traffic or budget it records NaN and +Inf. Each test runs our generated
rules on synthetic series; the gap and weighting tests run a Sloth-style
period rule beside ours, so the scenario is shown to trip it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import yaml

from tests.ch11.commands import exit_status
from tests.ch11.generated_rules import (
    expect,
    selector,
    write_plain_rules,
    write_rules,
)
from tests.ch11.promtool import counter, promtool_passes, run_promtool

SPEC = """\
version: prometheus/v1
service: shop
slos:
  - name: requests
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(shop_request_errors_total[{{.window}}]))
        total_query: sum(rate(shop_requests_total[{{.window}}]))
    alerting:
      name: ShopRequestsBurn
      page_alert:
        labels: {severity: page}
      ticket_alert:
        labels: {severity: ticket}
  - name: requests-raw
    objective: 99.9
    sli:
      raw:
        error_ratio_query: >-
          sum(rate(shop_request_errors_total[{{.window}}]))
          / sum(rate(shop_requests_total[{{.window}}]))
    alerting:
      name: ShopRequestsRawBurn
      page_alert:
        labels: {severity: page}
      ticket_alert:
        labels: {severity: ticket}
"""
TOTAL, ERRORS = "shop_requests_total", "shop_request_errors_total"
EVENTS = {"sloth_id": "shop-requests", "sloth_service": "shop",
          "sloth_slo": "requests"}
RAW = {"sloth_id": "shop-requests-raw", "sloth_service": "shop",
       "sloth_slo": "requests-raw"}
BUDGET = Fraction(1, 1000)  # 99.9%
STEP = "5m"  # between input samples; days of rules run hourly
STEPS_PER_HOUR = 12

# Sloth's period ratio, over a 5m ratio without the traffic guard.
SLOTH_STYLE = [
    {"record": "sloth_style:sli_error:ratio_rate5m",
     "expr": f"sum(rate({ERRORS}[5m])) / sum(rate({TOTAL}[5m]))"},
    {"record": "sloth_style:sli_error:ratio_rate30d",
     "expr": "sum_over_time(sloth_style:sli_error:ratio_rate5m[30d])"
             " / count_over_time(sloth_style:sli_error:ratio_rate5m[30d])"},
]
SLOTH_PERIOD = "sloth_style:sli_error:ratio_rate30d"


def with_window(labels: dict[str, str], window: str) -> dict[str, str]:
    return {**labels, "sloth_window": window}


def period_values(slo: dict[str, str], at: str,
                  ratio: Fraction) -> list[dict[str, object]]:
    """The period's ratio, burn rate and budget left, from `ratio`:
    burn rate = ratio / budget; budget left = 1 - burn rate. Both
    inherit the period ratio's labels, sloth_window 30d with them."""
    ids, labels = selector(slo), with_window(slo, "30d")
    return [
        expect(f"slo:sli_error:ratio_rate30d{ids}", at, (labels, ratio)),
        expect(f"slo:period_burn_rate:ratio{ids}", at,
               (labels, ratio / BUDGET)),
        expect(f"slo:period_error_budget_remaining:ratio{ids}", at,
               (labels, 1 - ratio / BUDGET)),
    ]


def nan_count(expr: str, at: str, count: int) -> dict[str, object]:
    """How many samples of `expr` are NaN (NaN != NaN holds)."""
    return {"expr": f"count(({expr}) != ({expr}))", "eval_time": at,
            "exp_samples": [{"labels": "{}", "value": count}]
            if count else []}


def test_a_gap_in_traffic_leaves_the_period_ratio_finite(
    tmp_path: Path,
) -> None:
    # 6 h of 2,000 requests per 5 min, 1 failing; 2 h with none (the
    # counters stay flat); then 2,000 a step, none failing, to day 3.
    busy, gap, after = 6 * STEPS_PER_HOUR, 2 * STEPS_PER_HOUR, 768
    total = counter((2000, busy), (0, gap), (2000, after))
    errors = counter((1, busy), (0, gap + after))
    # Rules run hourly, so each hour adds one 5m rate to the period's
    # sums: hours 1-6 busy, 7-8 idle (rate 0), 9 on quiet. Traffic is
    # steady within each phase, so the sums weigh as the events do and
    # the ratio is errors / requests since the start, by hand:
    #   6 h, 7 h (in the gap): 72 / (72 * 2000)          = 1/2000
    #   1 d: 72 / ((72 + 192) * 2000), 24 steps idle     = 3/22000
    #   3 d: 72 / ((72 + 768) * 2000)                    = 3/70000
    # Burn rate = ratio / 0.001; budget left = 1 - burn rate: at 3 d,
    # 3/70 and 67/70. The raw SLI averages its 5m ratios over the hours
    # with traffic; each carries 2,000 requests a step, so the average
    # is the same.
    ratios = {"6h": Fraction(1, 2000), "7h": Fraction(1, 2000),
              "1d": Fraction(3, 22_000), "3d": Fraction(3, 70_000)}
    ours = write_rules(tmp_path, SPEC, "shop")
    sloth = write_plain_rules(tmp_path, "sloth-style", SLOTH_STYLE)
    finite = [test for at, ratio in ratios.items() for slo in (EVENTS, RAW)
              for test in period_values(slo, at, ratio)]
    promtool_passes(tmp_path, [ours, sloth], "1h", {
        "interval": STEP,
        "input_series": [{"series": TOTAL, "values": total},
                         {"series": ERRORS, "values": errors}],
        "promql_expr_test": [
            *finite,
            # In the gap the 5m ratio has no sample, rather than NaN.
            expect(f"slo:sli_error:ratio_rate5m{selector(EVENTS)}", "7h"),
            # Sloth-style: finite before the gap, NaN from it on.
            expect(SLOTH_PERIOD, "6h", ({}, Fraction(1, 2000))),
            *(nan_count(SLOTH_PERIOD, at, 1) for at in ("7h", "1d", "3d")),
        ],
    })


def test_the_period_ratio_weighs_each_minute_by_its_traffic(
    tmp_path: Path,
) -> None:
    # Day 1: 10,000 requests per 5 min, 100 failing (1%); day 2: 100
    # per 5 min, none failing. Rules run hourly: 24 rates a day.
    day = 24 * STEPS_PER_HOUR
    total = counter((10_000, day), (100, day))
    errors = counter((100, day), (0, day))
    # By hand at 2 d: errors / requests
    #   = 24 * 100 / (24 * 10,000 + 24 * 100) = 100 / 10,100 = 1/101.
    # The average of the 5m ratios: 24 of 0.01 and 24 of 0 = 1/200,
    # half the errors there were.
    weighted, averaged = Fraction(1, 101), Fraction(1, 200)
    ours = write_rules(tmp_path, SPEC, "shop")
    sloth = write_plain_rules(tmp_path, "sloth-style", SLOTH_STYLE)
    promtool_passes(tmp_path, [ours, sloth], "1h", {
        "interval": STEP,
        "input_series": [{"series": TOTAL, "values": total},
                         {"series": ERRORS, "values": errors}],
        "promql_expr_test": [
            *period_values(EVENTS, "2d", weighted),
            expect(SLOTH_PERIOD, "2d", ({}, averaged)),
        ],
    })


SHOP_AND_SEARCH = """\
version: prometheus/v1
service: shop
slos:
  - name: requests
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(shop_request_errors_total[{{.window}}]))
        total_query: sum(rate(shop_requests_total[{{.window}}]))
    alerting: &alerting
      name: SLOBurn
      labels: {team: web}
      page_alert:
        labels: {severity: page}
      ticket_alert:
        labels: {severity: ticket}
  - name: latency
    objective: 99
    sli:
      events:
        error_query: sum(rate(shop_slow_requests_total[{{.window}}]))
        total_query: sum(rate(shop_requests_total[{{.window}}]))
    alerting: *alerting
---
version: prometheus/v1
service: search
slos:
  - name: requests
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(search_request_errors_total[{{.window}}]))
        total_query: sum(rate(search_requests_total[{{.window}}]))
    alerting:
      name: SLOBurn
      labels: {team: web}
      page_alert:
        labels: {severity: page}
      ticket_alert:
        labels: {severity: ticket}
"""
# The rule layout of one events SLO: a ratio for each of the 7 windows
# (5m, 30m, 1h, 2h, 6h, 1d, 3d), 2 event rates, the period ratio, 7
# metadata recordings (objective, budget, period days, current and
# period burn rate, budget left, info) and 2 alerts (page, ticket).
RULES_PER_EVENTS_SLO = 7 + 2 + 1 + 7 + 2


def burn_alerts(service: str, slo: str) -> list[dict[str, object]]:
    """The page and the ticket alert of one SLO, as they fire."""
    name = f"{service} {slo}"
    return [{
        "exp_labels": {"sloth_id": f"{service}-{slo}",
                       "sloth_service": service, "sloth_slo": slo,
                       "team": "web", "severity": severity,
                       "sloth_severity": severity},
        "exp_annotations": {
            "title": f"({severity}) {name} SLO error budget burn rate is"
                     " too fast.",
            "summary": f"{name} SLO error budget burn rate is over"
                       " expected."},
    } for severity in ("page", "ticket")]


def test_every_spec_of_a_file_is_loaded_from_one_rules_file(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "web.yaml"
    spec.write_text(SHOP_AND_SEARCH, encoding="utf-8")
    rules = tmp_path / "web.rules.yml"
    assert exit_status(["rules", str(spec), "-o", str(rules)]) == 0
    documents = list(yaml.safe_load_all(rules.read_text(encoding="utf-8")))
    assert len(documents) == 1
    assert len(documents[0]["groups"]) == 3
    checked = run_promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {3 * RULES_PER_EVENTS_SLO} rules found" in (
        checked.stdout)
    # An hour of 1,000 requests per 5 min, all fine; then 15 min in
    # which shop's requests are all slow and search's all fail. At
    # 75 min the 5m ratio is 1 and the 1h ratio 3/12 steps = 0.25, over
    # both page thresholds (14.4 x budget: 0.0144 for search's 99.9%,
    # 0.144 for shop's 99% latency); the 2h and 1d ratios, 3/15 = 0.2,
    # are over both tickets' (3x: 0.003, 0.03). Shop's availability
    # stays at 0 errors.
    healthy, outage = 12, 3
    promtool_passes(tmp_path, [rules], STEP, {
        "interval": STEP,
        "input_series": [
            {"series": "shop_requests_total",
             "values": counter((1000, healthy + outage))},
            {"series": "shop_request_errors_total",
             "values": counter((0, healthy + outage))},
            {"series": "shop_slow_requests_total",
             "values": counter((0, healthy), (1000, outage))},
            {"series": "search_requests_total",
             "values": counter((1000, healthy + outage))},
            {"series": "search_request_errors_total",
             "values": counter((0, healthy), (1000, outage))},
        ],
        "alert_rule_test": [
            {"eval_time": "1h", "alertname": "SLOBurn", "exp_alerts": []},
            {"eval_time": "75m", "alertname": "SLOBurn",
             "exp_alerts": [*burn_alerts("shop", "latency"),
                            *burn_alerts("search", "requests")]},
        ],
    })


def test_no_traffic_records_no_ratio_burn_rate_or_budget_left(
    tmp_path: Path,
) -> None:
    # Counters flat at 0 for 6 h, and no series at all: every ratio
    # would be 0/0. Nothing divides by zero; the metadata stays.
    ratios_and_burn = ('{__name__=~"slo:sli_error:.+'
                       '|slo:(current|period)_burn_rate:ratio'
                       '|slo:period_error_budget_remaining:ratio"}')
    times = ("5m", "1h", "6h")

    def metadata(at: str) -> list[dict[str, object]]:
        return [
            *(expect(name, at, *((slo, value) for slo in (EVENTS, RAW)))
              for name, value in (
                  ("slo:objective:ratio", Fraction(999, 1000)),
                  ("slo:error_budget:ratio", BUDGET),
                  ("slo:time_period:days", 30))),
            expect("sloth_slo_info", at, *(
                ({**slo, "sloth_mode": "cli-gen-prom",
                  "sloth_objective": "99.9", "sloth_spec": "prometheus/v1",
                  "sloth_version": "ch11_slo"}, 1)
                for slo in (EVENTS, RAW))),
        ]

    def nothing(series: list[dict[str, str]]) -> dict[str, object]:
        return {
            "interval": STEP, "input_series": series,
            "promql_expr_test": [
                *(expect(query, at) for at in times
                  for query in (ratios_and_burn, "ALERTS")),
                *metadata("6h"),
            ],
            "alert_rule_test": [
                {"eval_time": at, "alertname": name, "exp_alerts": []}
                for at in times
                for name in ("ShopRequestsBurn", "ShopRequestsRawBurn")],
        }

    flat = [{"series": name, "values": counter((0, 6 * STEPS_PER_HOUR))}
            for name in (TOTAL, ERRORS)]
    promtool_passes(
        tmp_path, [write_rules(tmp_path, SPEC, "shop")], STEP,
        nothing(flat), nothing([]))


def test_an_objective_of_100_percent_pages_on_an_error_with_no_burn_rate(
    tmp_path: Path,
) -> None:
    spec = SPEC.split("  - name: requests-raw")[0].replace(
        "objective: 99.9", "objective: 100")
    # An hour of 1,000 requests per 5 min, none failing; then one fails.
    # The 5m ratio is 1/1000; with no budget any error is too many, so
    # the page (and the ticket) fire; a burn rate of x/0 has no sample.
    healthy = 12
    no_burn_rate = ('{__name__=~"slo:(current|period)_burn_rate:ratio'
                    '|slo:period_error_budget_remaining:ratio"}')
    firing = [{"exp_labels": {**EVENTS, "severity": severity,
                              "sloth_severity": severity},
               "exp_annotations": {
                   "title": f"({severity}) shop requests SLO error budget"
                            " burn rate is too fast.",
                   "summary": "shop requests SLO error budget burn rate is"
                              " over expected."}}
              for severity in ("page", "ticket")]
    promtool_passes(
        tmp_path, [write_rules(tmp_path, spec, "shop")], STEP, {
            "interval": STEP,
            "input_series": [
                {"series": TOTAL, "values": counter((1000, healthy + 1))},
                {"series": ERRORS, "values": counter((0, healthy), (1, 1))},
            ],
            "promql_expr_test": [
                expect("slo:error_budget:ratio", "65m", (EVENTS, 0)),
                expect("slo:sli_error:ratio_rate5m", "65m",
                       (with_window(EVENTS, "5m"), Fraction(1, 1000))),
                *(expect(no_burn_rate, at) for at in ("1h", "65m")),
            ],
            "alert_rule_test": [
                {"eval_time": "1h", "alertname": "ShopRequestsBurn",
                 "exp_alerts": []},
                {"eval_time": "65m", "alertname": "ShopRequestsBurn",
                 "exp_alerts": firing},
            ],
        })
