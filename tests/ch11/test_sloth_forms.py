"""Every spec form Sloth reads, in the project's own specs.

Each file in `sloth_forms/` is generated in-process, its rules pass
`promtool check rules`, each SLO records exactly the names Sloth
records, the OpenSLO and Kubernetes forms give the SLO ids Sloth gives,
and the alerts fire in promtool exactly when the tier math says
(`tools/sloth_parity.py`, the check CI runs). A wrong threshold makes
that check fail, and the tie at a threshold is reported, not failed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from ch11_slo.generate import generate
from ch11_slo.rules import RuleOptions
from ch11_slo.spec import EventsSli, SpecOptions
from ch11_slo.spec_files import parse_specs
from ch11_slo.windows import read_catalogue
from tests.ch11.promtool import promtool, run_promtool
from tools.alert_equivalence import (
    burn_equivalence,
    slos_under_test_of,
    tie_behaviour,
)
from tools.sloth_parity import (
    check_file,
    main,
    recordings_by_slo,
    rule_groups_of,
    run,
)

FORMS = Path(__file__).parent / "sloth_forms"
SPEC_FILES = sorted(FORMS.glob("*.yml"))
WITHOUT_ALERTS = {"no-alerts.yml", "openslo-single.yml",
                  "openslo-multi-document.yml"}

# Sloth's recordings of an SLO over 30 days with the default tiers, as
# its documentation names them: the SLI's error ratio over each window
# the four tiers read (page 5m/1h and 30m/6h, ticket 2h/1d and 6h/3d)
# and over the period, then the SLO's metadata.
SLOTH_RECORDINGS = {
    *(f"slo:sli_error:ratio_rate{window}" for window in (
        "5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")),
    "slo:objective:ratio", "slo:error_budget:ratio", "slo:time_period:days",
    "slo:current_burn_rate:ratio", "slo:period_burn_rate:ratio",
    "slo:period_error_budget_remaining:ratio", "sloth_slo_info",
}
# Ours, for events SLIs only: errors and events per 5m, from which the
# period's ratio is weighed by traffic.
EVENTS_HELPERS = {"slo:sli_error_events:rate5m",
                  "slo:sli_total_events:rate5m"}


def groups_of(path: Path, options: SpecOptions | None = None,
              rules: RuleOptions | None = None) -> list[dict[str, Any]]:
    generated = generate(path, options or SpecOptions(),
                         rules or RuleOptions())
    return rule_groups_of(generated.rules)


def test_the_forms_are_every_form_sloth_reads() -> None:
    forms = {spec.form for path in SPEC_FILES
             for spec in parse_specs(path.read_text(encoding="utf-8"))}
    assert forms == {"prometheus/v1", "sloth.slok.dev/v1",
                     "openslo/v1alpha"}
    assert len(SPEC_FILES) == 11  # one per form and feature, see README


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_each_form_generates_rules_promtool_accepts(path: Path,
                                                    tmp_path: Path) -> None:
    promtool()
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups_of(path)}),
                     encoding="utf-8")
    checked = run_promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_each_slo_records_exactly_sloths_names(path: Path) -> None:
    specs = parse_specs(path.read_text(encoding="utf-8"))
    recorded = recordings_by_slo(groups_of(path))
    expected = {
        f"{spec.service}-{slo.name}": SLOTH_RECORDINGS | (
            EVENTS_HELPERS if isinstance(slo.sli, EventsSli) else set())
        for spec in specs for slo in spec.slos}
    assert recorded == expected


@pytest.mark.parametrize(("name", "ids"), [
    # OpenSLO: <service>-<metadata.name>-<objective's index>
    ("openslo-single.yml", {"speech-stream-availability-0"}),
    ("openslo-multi-document.yml", {"asr-gateway-first-result-0",
                                    "asr-gateway-final-latency-0",
                                    "asr-gateway-final-latency-1"}),
    # Sloth's Kubernetes resource: <service>-<slo name>
    ("k8s-single.yml", {"speech-stream-availability"}),
    ("k8s-labels.yml", {"speech-streams-keeping-up",
                        "speech-model-serving"}),
    ("k8s-multi-document.yml", {"speech-stream-availability",
                                "asr-gateway-admission"}),
])
def test_openslo_and_kubernetes_forms_give_sloths_slo_ids(
        name: str, ids: set[str]) -> None:
    assert set(recordings_by_slo(groups_of(FORMS / name))) == ids


def test_resources_are_answered_with_prometheus_rules() -> None:
    text = generate(FORMS / "k8s-multi-document.yml", SpecOptions(),
                    RuleOptions()).rules
    rules = list(yaml.safe_load_all(text))
    assert [(r["kind"], r["metadata"]["name"], r["metadata"]["namespace"])
            for r in rules] == [
        ("PrometheusRule", "speech-slos", "speech"),
        ("PrometheusRule", "asr-gateway-slos", "speech-edge")]
    (labelled,) = yaml.safe_load_all(generate(
        FORMS / "k8s-labels.yml", SpecOptions(), RuleOptions()).rules)
    assert {"prometheus": "speech", "role": "alert-rules",
            "app.kubernetes.io/part-of": "speech"}.items() <= (
        labelled["metadata"]["labels"].items())


def test_an_unquoted_label_value_is_its_text() -> None:
    (group,) = groups_of(FORMS / "single.yml")
    assert {rule["labels"]["tier"] for rule in group["rules"]
            if "record" in rule} == {"2"}


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_alerts_fire_as_the_tier_math_says(path: Path) -> None:
    report = check_file(path, None, promtool(), SpecOptions())
    assert report is not None
    assert not report.failed, report.notes
    assert report.cells["check"] == "ok"
    # Forms without alerts have no scenario to fire through.
    fires = "-" if path.name in WITHOUT_ALERTS else "ok"
    assert report.cells["fire ours"] == fires


def alerts_of(name: str) -> tuple[list[Any], list[Any]]:
    """The SLOs of a form under test, and its alert rules alone."""
    path = FORMS / name
    specs = parse_specs(path.read_text(encoding="utf-8"), SpecOptions())
    slos = slos_under_test_of(specs, groups_of(path))
    return slos, groups_of(path, rules=RuleOptions(recordings=False))


@pytest.mark.parametrize(("wrong", "when"), [
    # 99.9% over 30 days: the 1h page tier burns 2% of the budget in an
    # hour, 14.4x, so its threshold is 14.4 * 0.001 = 0.0144. Step 1 has
    # both its windows at 0.999x (0.0143856), step 2 at 1.001x.
    ("0.0145", "at 2m"),  # too high: silent when it should page
    ("0.0143", "at 1m"),  # too low: pages below the threshold
])
def test_a_wrong_threshold_fails_the_equivalence(wrong: str,
                                                 when: str) -> None:
    slos, alerts = alerts_of("single.yml")
    assert burn_equivalence(promtool(), slos, alerts).passed
    broken = yaml.safe_load(yaml.safe_dump(alerts).replace(
        "> 0.0144)", f"> {wrong})"))
    outcome = burn_equivalence(promtool(), slos, broken)
    assert not outcome.passed
    assert when in outcome.brief()


def test_at_exactly_a_threshold_only_a_float_threshold_may_fire() -> None:
    slos, alerts = alerts_of("single.yml")
    exact = tie_behaviour(promtool(), slos, alerts)
    assert exact.passed and exact.tie_fired == (0, 4)
    # A generator computing in floats writes factor * budget, the budget
    # as (100 - 99.9) / 100; promtool parses our exact thresholds to the
    # nearest floats, so a tier fires at the tie when the product is
    # below that float. The four tiers' factors: 14.4, 6, 3, 1.
    budget = (100 - 99.9) / 100
    thresholds = {"0.0144": 14.4, "0.006": 6, "0.003": 3, "0.001": 1}
    text = yaml.safe_dump(alerts)
    for exact_text, factor in thresholds.items():
        text = text.replace(f"> {exact_text})",
                            f"> ({factor} * {budget!r}))")
    low = sum(factor * budget < float(exact_text)
              for exact_text, factor in thresholds.items())
    assert low > 0  # this budget is a hair low: the tie is exercised
    floated = tie_behaviour(promtool(), slos, yaml.safe_load(text))
    assert floated.passed  # promtool agrees with the prediction
    assert floated.tie_fired == (low, 4)


def test_a_windows_file_sets_the_tiers_of_its_period() -> None:
    options = SpecOptions(default_period="14d",
                          windows=read_catalogue(FORMS / "windows"))
    groups = groups_of(FORMS / "single.yml", options)
    (names,) = recordings_by_slo(groups).values()
    assert {n for n in names if n.startswith("slo:sli_error:ratio")} == {
        f"slo:sli_error:ratio_rate{window}" for window in (
            "5m", "1h", "30m", "6h", "2h", "1d", "4h", "2d", "14d")}
    # 14 days are 336 h: 2% in 1h is 6.72x, 5% in 6h 2.8x, 10% in 1d
    # 1.4x, 25% in 2d 1.75x; times the budget of 99.9%, 0.001.
    alerts = " ".join(r["expr"] for g in groups for r in g["rules"]
                      if "alert" in r)
    for threshold in ("0.00672", "0.0028", "0.0014", "0.00175"):
        assert f"> {threshold})" in alerts
    report = check_file(FORMS / "single.yml", None, promtool(), options)
    assert report is not None and report.cells["fire ours"] == "ok"


PLUGIN_SPEC = """\
version: prometheus/v1
service: speech
slos:
  - name: stream-availability
    objective: 99.9
    sli:
      plugin:
        id: speech/availability
    alerting:
      page_alert: {disable: true}
      ticket_alert: {disable: true}
"""


def sloth_shaped(path: Path) -> str:
    """Our rules as Sloth shapes them: without our two helper
    recordings, and alerts that leave the SLO's identity to the
    recordings."""
    groups = groups_of(path)
    for group in groups:
        group["rules"] = [r for r in group["rules"]
                          if r.get("record") not in EVENTS_HELPERS]
        for rule in (r for r in group["rules"] if "alert" in r):
            for label in ("sloth_id", "sloth_service", "sloth_slo"):
                del rule["labels"][label]
    return yaml.safe_dump({"groups": groups})


def test_parity_with_a_checkout_layout(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    """Specs in a directory, the other generator's rules in `_gen/`:
    here our own rules, shaped as Sloth's, stand in for them, so all
    match until one recording name is changed."""
    shutil.copy(FORMS / "single.yml", tmp_path / "single.yml")
    (tmp_path / "plugin.yml").write_text(PLUGIN_SPEC, encoding="utf-8")
    (tmp_path / "_gen").mkdir()
    rules = sloth_shaped(FORMS / "single.yml")
    (tmp_path / "_gen" / "single.yml").write_text(rules, encoding="utf-8")
    reports, skipped = run(tmp_path, tmp_path, promtool())
    assert skipped == []
    plugin, single = reports
    assert plugin.cells == {"ours": "skipped: uses plugins"}
    assert not single.failed, single.notes
    assert single.cells["fire Sloth"] == "ok"
    assert single.cells["tie o/S"] == "0/4 0/4"
    (tmp_path / "_gen" / "single.yml").write_text(
        rules.replace("slo:time_period:days", "slo:period:days"),
        encoding="utf-8")
    status = main([str(tmp_path), "--gen", str(tmp_path),
                   "--promtool", promtool()])
    out = capsys.readouterr().out
    assert status == 1
    assert "Sloth only ['slo:period:days']" in out
    assert ("0 of 1 spec files match; differing: single.yml;"
            " skipped, using plugins: plugin.yml") in out
