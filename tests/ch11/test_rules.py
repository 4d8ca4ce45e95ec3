"""Rule generation: windows, guards, exact thresholds, the committed file.

The alert behaviour itself is proved in promtool (test_alerting.py);
these tests pin the shape of the rules and keep the committed rules
file what the generator makes of the committed spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ch11_slo.rules import rule_groups
from ch11_slo.rules_file import render_rules
from ch11_slo.spec_files import parse_spec
from tests.ch11.promtool import STREAMING_RULES, STREAMING_SPEC, run_promtool

TEST_SPEC = """\
version: prometheus/v1
service: asr
period: 28d
scrape_interval: 30s
labels: {team: speech}
slos:
  - name: availability
    objective: 99.95
    min_request_rate: 0.5
    sli:
      events:
        error_query: sum(rate(errors_total[{{ .window }}]))
        total_query: sum(rate(requests_total[{{.window}}]))
    alerting:
      name: AsrAvailabilityBurn
      labels: {category: availability}
      page_alert:
        labels: {severity: page}
        annotations: {summary: "Requests are failing."}
      ticket_alert:
        disable: true
"""


def groups_of(text: str) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = rule_groups(parse_spec(text))
    return groups


RATIO_WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
METADATA = ["slo:objective:ratio", "slo:error_budget:ratio",
            "slo:time_period:days", "slo:current_burn_rate:ratio",
            "slo:period_burn_rate:ratio",
            "slo:period_error_budget_remaining:ratio", "sloth_slo_info"]
# Sloth's recordings, in its order, and two of ours before the period's
# ratio: its error and total events over the shortest window.
RECORDINGS = ([f"slo:sli_error:ratio_rate{w}" for w in RATIO_WINDOWS]
              + ["slo:sli_error_events:rate5m", "slo:sli_total_events:rate5m",
                 "slo:sli_error:ratio_rate28d"] + METADATA)


def test_ratios_are_recorded_for_every_window_a_tier_reads() -> None:
    (group,) = groups_of(TEST_SPEC)
    records = [r for r in group["rules"] if "record" in r]
    assert [r["record"] for r in records] == RECORDINGS
    assert [r["labels"]["sloth_window"] for r in records[:7]] == \
        RATIO_WINDOWS
    assert records[0] == {
        "record": "slo:sli_error:ratio_rate5m",
        "expr": "(sum(rate(errors_total[5m])))\n/\n"
                "((sum(rate(requests_total[5m]))) > 0.5)\n",
        "labels": {"team": "speech", "sloth_id": "asr-availability",
                   "sloth_service": "asr", "sloth_slo": "availability",
                   "sloth_window": "5m"},
    }


def test_without_a_minimum_rate_any_traffic_is_judged() -> None:
    (group,) = groups_of(TEST_SPEC.replace("    min_request_rate: 0.5\n",
                                           ""))
    records = [r for r in group["rules"] if "record" in r][:7]
    assert all(r["expr"].endswith(") > 0)\n") for r in records)


def test_page_alert_ors_its_tiers_with_exact_thresholds() -> None:
    (group,) = groups_of(TEST_SPEC)
    (page,) = [r for r in group["rules"] if "alert" in r]  # no ticket
    ratio = ('slo:sli_error:ratio_rate{}{{sloth_id="asr-availability",'
             ' sloth_service="asr", sloth_slo="availability"}}')
    tier = (
        "(\n"
        "  max without (sloth_window) ({} > {})\n"
        "  and\n"
        "  max without (sloth_window) ({} > {})\n"
        ")"
    )
    # 28 days: 2% in 1h is 13.44x, 5% in 6h is 5.6x; budget 0.0005.
    assert page == {
        "alert": "AsrAvailabilityBurn",
        "expr": tier.format(ratio.format("5m"), "0.00672",
                            ratio.format("1h"), "0.00672")
        + "\nor\n"
        + tier.format(ratio.format("30m"), "0.0028",
                      ratio.format("6h"), "0.0028") + "\n",
        "labels": {"category": "availability", "severity": "page",
                   "sloth_id": "asr-availability", "sloth_service": "asr",
                   "sloth_slo": "availability", "sloth_severity": "page"},
        "annotations": {
            "title": "(page) {{$labels.sloth_service}}"
                     " {{$labels.sloth_slo}} SLO error budget burn rate is"
                     " too fast.",
            "summary": "Requests are failing."},
    }


def test_alerts_without_annotations_get_sloths_title_and_summary() -> None:
    (group,) = groups_of(TEST_SPEC.replace(
        '        annotations: {summary: "Requests are failing."}\n', ""))
    (page,) = [r for r in group["rules"] if "alert" in r]
    assert page["annotations"]["summary"] == (
        "{{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget"
        " burn rate is over expected.")
    assert len(group["rules"]) == len(RECORDINGS) + 1  # and the page
    assert all("for" not in r for r in group["rules"])


def test_slos_with_every_alert_disabled_get_only_recordings() -> None:
    text = TEST_SPEC.replace("page_alert:\n", "page_alert:\n"
                             "        disable: true\n")
    (group,) = groups_of(text)
    # Only the alerts go: every ratio is still recorded.
    assert [r.get("record") for r in group["rules"]] == RECORDINGS


def test_the_rules_file_names_its_source_and_reads_back() -> None:
    groups = groups_of(TEST_SPEC)
    text = render_rules(groups, "asr.yaml")
    assert text.startswith("# Generated by `python -m ch11_slo rules`"
                           " from asr.yaml.\n")
    assert "expr: |\n" in text  # PromQL as block text, as people write it
    assert yaml.safe_load(text) == {"groups": groups}


def test_committed_rules_are_what_the_committed_spec_generates() -> None:
    spec = parse_spec(STREAMING_SPEC.read_text(encoding="utf-8"))
    expected = render_rules(rule_groups(spec), STREAMING_SPEC.name)
    assert STREAMING_RULES.read_text(encoding="utf-8") == expected, (
        "regenerate: python -m ch11_slo rules ch11_slo/specs/streaming.yaml"
        " -o ch11_slo/specs/streaming.rules.yml")


def test_promtool_accepts_the_committed_rules() -> None:
    done = run_promtool("check", "rules", str(STREAMING_RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    # Per SLO: 17 recordings and 2 alerts.
    assert f"SUCCESS: {3 * (len(RECORDINGS) + 2)} rules found" in done.stdout


def test_promtool_accepts_rules_from_a_test_spec(tmp_path: Path) -> None:
    path = tmp_path / "asr.rules.yml"
    path.write_text(render_rules(groups_of(TEST_SPEC), "asr.yaml"),
                    encoding="utf-8")
    done = run_promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(RECORDINGS) + 1} rules found" in done.stdout


def test_promtool_rejects_a_broken_rules_file(tmp_path: Path) -> None:
    # The check above can fail: a rule with bad PromQL is caught.
    path = tmp_path / "broken.rules.yml"
    path.write_text(render_rules(groups_of(TEST_SPEC.replace(
        "sum(rate(errors_total", "sum(rate(errors_total)")), "asr.yaml"),
        encoding="utf-8")
    done = run_promtool("check", "rules", str(path))
    assert done.returncode != 0
