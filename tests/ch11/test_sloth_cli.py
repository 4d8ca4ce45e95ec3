"""Sloth's CLI as `rules` flags and `validate`: every flag, every refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ch11_slo.__main__ import main

SPEC = """\
version: prometheus/v1
service: {service}
labels: {{team: speech}}
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(speech_streams_errors_total[{{{{.window}}}}]))
        total_query: sum(rate(speech_streams_total[{{{{.window}}}}]))
    alerting:
      name: SpeechAvailabilityBurn
      page_alert: {{labels: {{severity: page}}}}
      ticket_alert: {{labels: {{severity: ticket}}}}
"""
RESOURCE = """\
apiVersion: sloth.slok.dev/v1
kind: PrometheusServiceLevel
metadata:
  name: speech-slos
  namespace: monitoring
  labels: {role: alert-rules}
spec:
  service: speech
  slos:
    - name: availability
      objective: 99.5
      sli:
        raw:
          errorRatioQuery: 1 - avg_over_time(speech_up[{{.window}}])
      alerting:
        name: SpeechDown
        pageAlert: {labels: {severity: page}}
        ticketAlert: {disable: true}
"""
WINDOWS = """\
apiVersion: sloth.slok.dev/v1
kind: AlertWindows
spec:
  sloPeriod: 14d
  page:
    quick: {errorBudgetPercent: 4, shortWindow: 5m, longWindow: 1h}
    slow: {errorBudgetPercent: 10, shortWindow: 30m, longWindow: 6h}
  ticket:
    quick: {errorBudgetPercent: 20, shortWindow: 2h, longWindow: 1d}
    slow: {errorBudgetPercent: 20, shortWindow: 6h, longWindow: 2d}
"""


def spec_text(service: str = "speech") -> str:
    return SPEC.format(service=service)


def rules_of(text: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        rule for group in yaml.safe_load(text)["groups"]
        for rule in group["rules"]]
    return rules


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str,
                                                                  str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Specs in nested folders, as a team keeps them."""
    root = tmp_path / "slos"
    for relative, service in (("speech.yml", "speech"),
                              ("batch/transcribe.yaml", "transcribe"),
                              ("drafts/new.yml", "draft")):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec_text(service))
    (root / "notes.txt").write_text("not a spec")
    return root


def test_a_directory_becomes_rules_at_the_same_paths(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "rules"
    out.mkdir()
    status, _, err = run(capsys, "rules", "-i", str(tree), "-o", str(out))
    assert status == 0, err
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.y*ml"))
    assert written == ["batch/transcribe.yaml", "drafts/new.yml",
                       "speech.yml"]
    assert 'sloth_service: transcribe' in (
        out / "batch" / "transcribe.yaml").read_text()


def test_include_and_exclude_filter_paths_exclude_first(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "rules"
    out.mkdir()
    status, _, err = run(capsys, "rules", str(tree), "-o", str(out),
                         "--fs-include", r"\.yml$", "--fs-exclude", "drafts")
    assert status == 0, err
    assert [p.name for p in out.rglob("*.y*ml")] == ["speech.yml"]


@pytest.mark.parametrize(("extra", "message"), [
    ([], "error: --out: needed: the input is a directory"),
    (["-o", "SAME"], "error: --out: must not be the input directory"),
    (["-o", "FILE"], "is not a directory, and the input is one"),
    (["-o", "OUT", "--fs-include", "nothing-matches"],
     "error: spec: no spec files found under"),
    (["-o", "OUT", "--fs-exclude", "("], "error: --fs-exclude: not a"
     " regular expression"),
])
def test_directory_input_refusals(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    extra: list[str], message: str,
) -> None:
    (tmp_path / "OUT").mkdir()
    (tmp_path / "FILE").write_text("")
    places = {"SAME": str(tree), "FILE": str(tmp_path / "FILE"),
              "OUT": str(tmp_path / "OUT")}
    status, _, err = run(capsys, "rules", str(tree),
                         *(places.get(word, word) for word in extra))
    assert status == 2
    assert message in err
    assert not any((tmp_path / "OUT").iterdir())  # nothing half-written


def test_extra_labels_go_on_every_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "speech.yml"
    path.write_text(spec_text())
    status, out, _ = run(capsys, "rules", str(path), "-l", "env=prod",
                         "--extra-labels", "cluster=eu-1")
    assert status == 0
    rules = rules_of(out)
    records = [r for r in rules if "record" in r]
    assert all(r["labels"]["env"] == "prod"
               and r["labels"]["cluster"] == "eu-1" for r in records)
    # Alerts inherit them from the ratios they read, as in Sloth.
    assert all("env" not in r["labels"] for r in rules if "alert" in r)


@pytest.mark.parametrize(("pair", "message"), [
    ("env", "--extra-labels: 'env' is not KEY=VALUE"),
    ("sloth_id=x", "--extra-labels.sloth_id: label names starting"),
    ("bad-name=x", "--extra-labels.bad-name: is not a label name"),
])
def test_bad_extra_labels_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pair: str,
    message: str,
) -> None:
    path = tmp_path / "speech.yml"
    path.write_text(spec_text())
    status, _, err = run(capsys, "rules", str(path), "-l", pair)
    assert status == 2 and err.startswith(f"error: {message}")


def test_recordings_or_alerts_can_be_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "speech.yml"
    path.write_text(spec_text())
    _, alerts_only, _ = run(capsys, "rules", str(path),
                            "--disable-recordings")
    _, records_only, _ = run(capsys, "rules", str(path), "--disable-alerts")
    assert [r["alert"] for r in rules_of(alerts_only)] == [
        "SpeechAvailabilityBurn"] * 2
    assert all("record" in r for r in rules_of(records_only))
    assert len(rules_of(records_only)) == 17
    _, nothing, _ = run(capsys, "rules", str(path), "--disable-alerts",
                        "--disable-recordings")
    assert yaml.safe_load(nothing) == {"groups": []}


def test_a_windows_directory_replaces_the_default_tiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    windows = tmp_path / "windows"
    windows.mkdir()
    (windows / "14d.yaml").write_text(WINDOWS)
    path = tmp_path / "speech.yml"
    path.write_text(spec_text())
    flags = ("--slo-period-windows-path", str(windows))
    status, _, err = run(capsys, "rules", str(path), *flags)
    assert status == 2  # the spec's 30 days are not in the catalogue
    assert err == ("error: period: 30d has no alert windows in"
                   f" {windows} (it has 14d)\n")
    status, out, err = run(capsys, "rules", str(path), *flags,
                           "--default-slo-period", "14d")
    assert status == 0, err
    windows_recorded = [r["labels"]["sloth_window"] for r in rules_of(out)
                        if r.get("record", "").startswith("slo:sli_error:r")]
    assert windows_recorded == ["5m", "30m", "1h", "2h", "6h", "1d", "2d",
                                "14d"]
    # 4% of 14 days in 1h: 0.04 * 336 = 13.44x; at 99.9%, 0.01344.
    assert "> 0.01344)" in out
    # 20% of 14 days in 2 days is 1.4x: 0.0014.
    assert "ratio_rate2d" in out and "> 0.0014)" in out


@pytest.mark.parametrize(("text", "message"), [
    (WINDOWS.replace("AlertWindows", "Windows"), "not a windows file"),
    (WINDOWS.replace("sloPeriod: 14d", "sloPeriod: two weeks"),
     "sloPeriod: unknown duration"),
    (WINDOWS.replace("    slow: {errorBudgetPercent: 20, shortWindow: 6h,"
                     " longWindow: 2d}\n", ""), "spec.ticket.slow: missing"),
    (WINDOWS.replace("errorBudgetPercent: 4,", "errorBudgetPercent: x,"),
     "errorBudgetPercent: must be a percentage"),
])
def test_bad_windows_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
    message: str,
) -> None:
    windows = tmp_path / "windows"
    windows.mkdir()
    (windows / "14d.yaml").write_text(text)
    path = tmp_path / "speech.yml"
    path.write_text(spec_text())
    status, _, err = run(capsys, "rules", str(path),
                         "--slo-period-windows-path", str(windows))
    assert status == 2 and message in err


def test_the_default_period_applies_to_specs_that_name_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "speech.yml"
    path.write_text(spec_text())
    _, out, err = run(capsys, "rules", str(path), "--default-slo-period",
                      "28d")
    assert "> 0.01344)" in out  # 2% of 28 days in 1h: 13.44x
    assert "ratio_rate28d" in out and "vector(28)" in out
    assert "factor 0.933333333333333 is below 1 over 28d" in err


def test_a_resource_is_answered_with_a_prometheus_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "speech.yml"
    other = RESOURCE.replace("speech-slos", "other-slos").replace(
        "service: speech", "service: other")
    path.write_text(f"{RESOURCE}---\n{other}")
    status, out, err = run(capsys, "rules", str(path), "-o", "-")
    assert status == 0, err
    first, second = (d for d in yaml.safe_load_all(out) if d)
    assert (first["kind"], first["apiVersion"]) == (
        "PrometheusRule", "monitoring.coreos.com/v1")
    assert first["metadata"] == {
        "name": "speech-slos", "namespace": "monitoring",
        "labels": {"role": "alert-rules",
                   "app.kubernetes.io/component": "SLO",
                   "app.kubernetes.io/managed-by": "ch11_slo"}}
    assert second["metadata"]["name"] == "other-slos"
    (group,) = first["spec"]["groups"]
    ratio = group["rules"][0]
    assert ratio["expr"] == "(1 - avg_over_time(speech_up[5m]))\n>= 0\n"
    assert [r["alert"] for r in group["rules"] if "alert" in r] == [
        "SpeechDown"]


def test_a_file_mixing_resources_and_specs_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "mixed.yml"
    path.write_text(f"{RESOURCE}---\n{spec_text('other')}")
    status, _, err = run(capsys, "rules", str(path))
    assert status == 2 and "mixes sloth.slok.dev/v1 resources" in err


def test_an_error_in_a_later_document_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "two.yml"
    path.write_text(spec_text() + "---\n"
                    + spec_text("other").replace("99.9", "0"))
    status, _, err = run(capsys, "rules", str(path))
    assert status == 2
    assert err.startswith("error: document 2: slos[0].objective: 0 must")
    path.write_text(spec_text() + "---\n" + spec_text())
    status, _, err = run(capsys, "rules", str(path))
    assert err == ("error: spec: SLO 'speech-availability' is defined"
                   " twice\n")


def test_strict_refuses_what_the_default_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "speech.yml"
    path.write_text(spec_text().replace("slos:", "owner: speech-team\nslos:"))
    status, _, err = run(capsys, "rules", str(path))
    assert status == 0
    assert err.startswith("warning: owner: unknown field, ignored")
    status, _, err = run(capsys, "rules", str(path), "--strict")
    assert status == 2 and err.startswith("error: owner: unknown field")


def test_one_input_is_needed(capsys: pytest.CaptureFixture[str],
                             tmp_path: Path) -> None:
    assert run(capsys, "rules")[0] == 2
    path = tmp_path / "speech.yml"
    path.write_text(spec_text())
    status, _, err = run(capsys, "rules", str(path), "-i", str(path))
    assert status == 2 and "give one spec file or directory" in err


def test_validate_reports_every_file_and_writes_nothing(
    tree: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    before = sorted(tree.rglob("*"))
    status, out, _ = run(capsys, "validate", "-i", str(tree))
    assert status == 0
    assert out.splitlines() == [
        f"ok {tree / 'batch' / 'transcribe.yaml'}: 1 SLOs",
        f"ok {tree / 'drafts' / 'new.yml'}: 1 SLOs",
        f"ok {tree / 'speech.yml'}: 1 SLOs"]
    assert sorted(tree.rglob("*")) == before


def test_validate_finds_bad_specs_and_slos_defined_twice(
    tree: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tree / "drafts" / "new.yml").write_text(spec_text("speech"))
    (tree / "broken.yml").write_text(spec_text("x").replace(
        "{{.window}}", ""))
    status, out, _ = run(capsys, "validate", str(tree))
    assert status == 2
    lines = out.splitlines()
    assert f"invalid {tree / 'broken.yml'}: slos[0].sli.events.error_query:"\
        " has no {{.window}}" in "\n".join(lines)
    assert lines[-1] == (
        f"invalid {tree / 'speech.yml'}: SLO 'speech-availability' is"
        f" also defined in {tree / 'drafts' / 'new.yml'}")
