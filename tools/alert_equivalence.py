"""Alert equivalence in promtool: burn scenarios against the tier math.

Chapter 11, "Monitoring and alerting on SLO burn rate". Two alert rule
sets for one SLO (ours, and Sloth's for the same spec) read the same
recordings, `slo:sli_error:ratio_rate<W>`. Both are fed the same
synthetic recordings: zero errors, then each tier's two windows just
under (0.999x) and just over (1.001x) its threshold, one window over
and the other under, and a total outage. When each alert must fire is
worked out here from the exact burn-rate table, and `promtool test
rules` asserts that the rules fire exactly then. A separate tie
scenario puts both windows of a tier exactly at its threshold: our
exact threshold stays silent; a threshold written as a float product
of factor and budget, as Sloth writes it, may sit a hair low and fire.
Which fires there is predicted from each rule's own threshold text,
checked in promtool, and reported, as rounding, not as a failure.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import yaml

from ch11_slo.burn_rates import decimal_text
from ch11_slo.durations import format_duration
from ch11_slo.rules import Rule
from ch11_slo.spec import ServiceSpec, SloSpec

Step = Mapping[str, str]  # a window's label ("5m") -> its ratio as text
AlertKey = tuple[str, str]  # (alert name, sloth_severity)
Firing = Callable[[AlertKey, Step], bool]  # does it fire at this step?
RATIO = "slo:sli_error:ratio_rate"
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
TEMPLATE = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")
NUMBER = r"[0-9][0-9.eE+-]*"
CLAUSE = re.compile(rf"slo:sli_error:ratio_rate(\w+)\{{[^}}]*\}}\s*>\s*"
                    rf"(\(\s*{NUMBER}(?:\s*\*\s*{NUMBER})*\s*\)|{NUMBER})")


@dataclass(frozen=True)
class SloUnderTest:
    """One SLO: its spec (for the tier math and which alerts it has)
    and the labels its recordings carry, but the window."""

    slo_id: str
    slo: SloSpec
    labels: Mapping[str, str]

    def expected(self) -> list[AlertKey]:
        return [(self.slo.alert_name, severity)
                for severity, alert in (("page", self.slo.page),
                                        ("ticket", self.slo.ticket))
                if alert.enabled and any(
                    rate.tier.severity == severity
                    for rate in self.slo.burn_rates.rates)]


@dataclass(frozen=True)
class Outcome:
    passed: bool
    detail: str  # promtool's complaint, when it failed
    tie_fired: tuple[int, int] = (0, 0)  # tiers firing at a tie, of all
    ran: bool = True  # False: no alert to fire, nothing was run

    def brief(self) -> str:
        """promtool's complaint, short: which alerts differ, and when."""
        failures = re.findall(r"alertname: (\S+), time: (\S+),",
                              self.detail)
        if not failures:
            return " ".join(self.detail.split())[:300]
        when: dict[str, list[str]] = {}
        for name, at in failures:
            when.setdefault(name, [])
            if at not in when[name]:
                when[name].append(at)
        return "promtool: alerts not as expected: " + "; ".join(
            f"{name} at {', '.join(times)}" for name, times in when.items())


NOTHING_TO_FIRE = Outcome(True, "", ran=False)


def slos_under_test_of(specs: Sequence[ServiceSpec],
                       groups: Sequence[Rule]) -> list[SloUnderTest]:
    """Each SLO of a spec, with the labels its ratio recordings carry."""
    labels: dict[str, dict[str, str]] = {}
    for rule in (r for g in groups for r in g["rules"]):
        if str(rule.get("record", "")).startswith(RATIO):
            given = dict(rule["labels"])
            given.pop("sloth_window")
            labels[given["sloth_id"]] = given
    return [SloUnderTest(spec.slo_id(slo), slo, labels[spec.slo_id(slo)])
            for spec in specs for slo in spec.slos]


def burn_steps(slo: SloSpec) -> list[Step]:
    """A minute each: zero errors; then per tier, in the table's order,
    both windows at 0.999x its threshold, both at 1.001x, the short
    window over and the long under, the short under and the long over;
    then a total outage, and zero again."""
    windows = [format_duration(w) for w in slo.windows]
    quiet = dict.fromkeys(windows, "0")
    steps: list[Step] = [quiet]
    for rate in slo.burn_rates.rates:
        under, over = (decimal_text(min(rate.threshold * k, Fraction(1)))
                       for k in (Fraction(999, 1000), Fraction(1001, 1000)))
        short, long = (format_duration(w) for w in (rate.tier.short_window,
                                                 rate.tier.long_window))
        steps += [{**quiet, short: s, long: lo} for s, lo in (
            (under, under), (over, over), (over, under), (under, over))]
    return [*steps, dict.fromkeys(windows, "1"), quiet]


def tie_steps(under_test: SloUnderTest) -> list[Step]:
    """Each alerting tier's two windows exactly at its threshold, in
    turn."""
    slo = under_test.slo
    severities = {severity for _, severity in under_test.expected()}
    quiet = dict.fromkeys((format_duration(w) for w in slo.windows), "0")
    return [{**quiet, format_duration(rate.tier.short_window): at,
             format_duration(rate.tier.long_window): at}
            for rate in slo.burn_rates.rates
            if rate.tier.severity in severities
            for at in [decimal_text(rate.threshold)]]


def exact_firing(under_test: SloUnderTest, step: Step) -> set[str]:
    """Severities firing at `step`, by the exact tier math: both
    windows of one of the severity's tiers above its threshold."""
    return {rate.tier.severity for rate in under_test.slo.burn_rates.rates
            if all(Fraction(step[format_duration(window)]) > rate.threshold
                   for window in (rate.tier.short_window,
                                  rate.tier.long_window))}


def by_tier_math(under_test: SloUnderTest) -> Firing:
    def firing(key: AlertKey, step: Step) -> bool:
        return key[1] in exact_firing(under_test, step)
    return firing


def by_float_thresholds(alerts: Mapping[AlertKey, Rule]) -> Firing:
    def firing(key: AlertKey, step: Step) -> bool:
        return key in alerts and float_firing(alerts[key], step) > 0
    return firing


def float_thresholds(expr: str) -> list[tuple[tuple[str, float], ...]]:
    """The tiers of an alert expression as Prometheus computes them:
    each (window, threshold) pair, the threshold in float64."""
    clauses = [(window, product(threshold))
               for window, threshold in CLAUSE.findall(expr)]
    return list(zip(clauses[::2], clauses[1::2], strict=True))


def product(text: str) -> float:
    value = 1.0
    for factor in text.strip("() ").split("*"):
        value *= float(factor)
    return value


def float_firing(alert: Rule, step: Step) -> int:
    """How many tiers of `alert` fire at `step`, in float64."""
    return sum(all(float(step[window]) > threshold
                   for window, threshold in tier)
               for tier in float_thresholds(str(alert["expr"])))


def series(name: str, labels: Mapping[str, str]) -> str:
    pairs = ",".join(f"{key}={json.dumps(value, ensure_ascii=False)}"
                     for key, value in sorted(labels.items()))
    return f"{name}{{{pairs}}}"


def expand(text: str, labels: Mapping[str, str]) -> str:
    return TEMPLATE.sub(lambda match: labels.get(match[1], ""), text)


def expected_alert(under_test: SloUnderTest, key: AlertKey,
                   alerts: Mapping[AlertKey, Rule]) -> dict[str, object]:
    """The alert as promtool shows it: the recordings' labels (but the
    window), the rule's labels over them, annotations expanded."""
    rule = alerts.get(key, {"labels": {"sloth_severity": key[1]}})
    labels = {**under_test.labels, **rule.get("labels", {})}
    annotations = {name: expand(str(text), labels)
                   for name, text in rule.get("annotations", {}).items()}
    return {"exp_labels": labels, "exp_annotations": annotations}


def promtool_test_group(under_test: SloUnderTest, steps: Sequence[Step],
                        alerts: Mapping[AlertKey, Rule],
                        firing: Firing) -> dict[str, object]:
    """One promtool test group: the SLO's recordings stepping through
    `steps`, a minute each, and the alerts `firing` says at each."""
    windows = list(steps[0])
    inputs = [{"series": series(f"{RATIO}{window}", {
        **under_test.labels, "sloth_window": window}),
        "values": " ".join(step[window] for step in steps)}
        for window in windows]
    checks = [{"eval_time": f"{minute}m", "alertname": name,
               "exp_alerts": [expected_alert(under_test, key, alerts)
                              for key in under_test.expected()
                              if key[0] == name and firing(key, step)]}
              for minute, step in enumerate(steps)
              for name in sorted({key[0] for key in under_test.expected()})]
    return {"interval": "1m", "input_series": inputs,
            "alert_rule_test": checks}


def promtool_on(promtool: str, command: Sequence[str],
                groups: Sequence[Rule],
                tests: Sequence[dict[str, object]] = ()) -> Outcome:
    """`promtool <command>` on a file of `groups`, or, with `tests`, on
    a test file of them over it."""
    with tempfile.TemporaryDirectory(prefix="alert-equivalence-") as tmp:
        target = rules = Path(tmp) / "rules.yml"
        rules.write_text(yaml.dump({"groups": list(groups)},
                                   Dumper=DUMPER), encoding="utf-8")
        if tests:
            target = Path(tmp) / "test.yml"
            target.write_text(yaml.dump({
                "rule_files": [str(rules)], "evaluation_interval": "1m",
                "tests": list(tests)}, Dumper=DUMPER, sort_keys=False),
                encoding="utf-8")
        done = subprocess.run([promtool, *command, str(target)],
                              capture_output=True, text=True, timeout=60,
                              check=False)
    return Outcome(done.returncode == 0,
                   "" if done.returncode == 0
                   else (done.stderr + done.stdout).strip())


def check_rules(promtool: str, groups: Sequence[Rule]) -> Outcome:
    return promtool_on(promtool, ("check", "rules"), groups)


def promtool_test_rules(promtool: str, groups: Sequence[Rule],
                 tests: Sequence[dict[str, object]]) -> Outcome:
    """`promtool test rules` of `tests` over a file of `groups`."""
    return promtool_on(promtool, ("test", "rules"), groups, tests)


def alerts_by_slo(groups: Sequence[Rule]) -> dict[str, dict[AlertKey,
                                                            Rule]]:
    """The alert rules of `groups`, by SLO id (from their selector)."""
    found: dict[str, dict[AlertKey, Rule]] = {}
    for group in groups:
        for rule in group.get("rules", []):
            match = re.search(r'sloth_id="([^"]+)"', str(rule.get("expr")))
            if "alert" in rule and match:
                key = (rule["alert"], rule["labels"]["sloth_severity"])
                found.setdefault(match[1], {})[key] = rule
    return found


def alert_groups(groups: Sequence[Rule]) -> list[Rule]:
    """Only the alert rules of `groups`, so nothing but the scenario's
    recordings reach them."""
    kept = [{"name": group["name"],
             "rules": [r for r in group["rules"] if "alert" in r]}
            for group in groups]
    return [group for group in kept if group["rules"]]


def burn_equivalence(promtool: str, slos: Sequence[SloUnderTest],
                     groups: Sequence[Rule]) -> Outcome:
    """Do the alerts of `groups` fire exactly when the tier math says,
    through every SLO's burn scenario?"""
    alerts = alerts_by_slo(groups)
    tests = [promtool_test_group(under_test, burn_steps(under_test.slo),
                                 alerts.get(under_test.slo_id, {}),
                                 by_tier_math(under_test))
             for under_test in slos if under_test.expected()]
    if not tests:
        return NOTHING_TO_FIRE
    return promtool_test_rules(promtool, alert_groups(groups), tests)


def tie_behaviour(promtool: str, slos: Sequence[SloUnderTest],
                  groups: Sequence[Rule]) -> Outcome:
    """At exactly each threshold: how many tiers fire, as predicted
    from the rules' float thresholds and confirmed in promtool."""
    alerts = alerts_by_slo(groups)
    tests, fired, tiers = [], 0, 0
    for under_test in (u for u in slos if u.expected()):
        own = alerts.get(under_test.slo_id, {})
        steps = tie_steps(under_test)
        tiers += len(steps)
        fired += sum(1 for step in steps for rule in own.values()
                     if float_firing(rule, step))
        tests.append(promtool_test_group(under_test, steps, own,
                                         by_float_thresholds(own)))
    if not tests:
        return NOTHING_TO_FIRE
    outcome = promtool_test_rules(promtool, alert_groups(groups), tests)
    return Outcome(outcome.passed, outcome.detail, (fired, tiers))
