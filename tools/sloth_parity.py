"""Parity with Sloth: every spec file generated, compared, and fired.

Chapter 11, "Monitoring and alerting on SLO burn rate". For each spec
file in a directory (files using Sloth's Go plugins are skipped) the
generator's rules are made in-process and checked by `promtool check
rules`. Given Sloth's output for the same files (`<name>.gen.yml` or
`_gen/<name>.yml`, as in Sloth's `examples/`), each SLO is compared:
its recording names, its alerts (name and severity), their labels and
annotations. Then the alerts are fired in promtool through the same
burn scenarios (`alert_equivalence.py`): ours, and Sloth's where given,
must fire exactly when the exact tier math says. Ours add to Sloth's
recordings two helpers of events SLIs, and name the SLO in the alert's
labels, which Sloth's alerts inherit from the recordings instead.

    python -m tools.sloth_parity DIR [--gen DIR]
        [--slo-period-windows-path DIR] [--default-slo-period 30d]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ch11_slo.durations import parse_duration
from ch11_slo.invalid import InvalidField, PluginsRefused
from ch11_slo.rules import SLO_ID_LABELS, Rule
from ch11_slo.rules_file import render_file
from ch11_slo.spec import DEFAULT_PERIOD, SpecOptions
from ch11_slo.spec_files import parse_specs
from ch11_slo.windows import read_catalogue
from tools.alert_equivalence import (
    Outcome,
    alerts_by_slo,
    burn_equivalence,
    check_rules,
    slos_under_test_of,
    tie_behaviour,
)

# Ours for events SLIs only: the period's ratio weighs errors by events.
HELPER_RECORDINGS = frozenset({"slo:sli_error_events:rate5m",
                               "slo:sli_total_events:rate5m"})
# libyaml when there is one: rules files are long.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NOT_SPECS = ("PrometheusRule", "AlertWindows")
PLUGINS = "skipped: uses plugins"
COLUMNS = ("file", "form", "SLOs", "ours", "check", "recordings", "alerts",
           "labels", "annotations", "fire ours", "fire Sloth", "tie o/S")


@dataclass
class FileReport:
    """One spec file: its cells in the summary, and notes on them."""

    name: str
    cells: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failed: bool = False

    def cell(self, column: str, passed: bool, text: str = "",
             note: str = "") -> None:
        self.cells[column] = text or ("ok" if passed else "DIFFERS")
        self.failed |= not passed
        if note:
            self.notes.append(f"{column}: {note}")


def documents(path: Path) -> list[object]:
    try:
        return [d for d in yaml.load_all(path.read_text("utf-8"), LOADER)
                if d is not None]
    except yaml.YAMLError:
        return []  # left to the generator to refuse, with the reason


def is_rules_file(docs: Sequence[object]) -> bool:
    return bool(docs) and all(isinstance(d, dict) and (
        "groups" in d or d.get("kind") in NOT_SPECS) for d in docs)


def rule_groups_of(text: str) -> list[Rule]:
    """The rule groups of a rules file or of PrometheusRule documents,
    one or several YAML documents, Sloth's or ours."""
    groups: list[Rule] = []
    for doc in yaml.load_all(text, LOADER):
        if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
            doc = doc.get("spec", {})
        if isinstance(doc, dict):
            groups += doc.get("groups") or []
    return groups


def recordings_by_slo(groups: Sequence[Rule]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for rule in (r for g in groups for r in g.get("rules", [])):
        if "record" in rule:
            slo_id = rule.get("labels", {}).get("sloth_id", "?")
            found.setdefault(slo_id, set()).add(rule["record"])
    return found


def sloth_output(spec: Path, gen: Path) -> Path | None:
    """Sloth's rules for `spec`: beside it, or in Sloth's `_gen/`."""
    names = [f"{spec.stem}.gen.yml", f"{spec.stem}.gen.yaml",
             f"_gen/{spec.name}"]
    if gen.resolve() != spec.parent.resolve():
        names.append(spec.name)
    return next((gen / n for n in names if (gen / n).is_file()), None)


def compare(report: FileReport, ours: Sequence[Rule],
            sloth: Sequence[Rule]) -> None:
    """Per SLO: recording names, alerts, their labels and annotations."""
    our_names, their_names = (recordings_by_slo(g) for g in (ours, sloth))
    our_alerts, their_alerts = (alerts_by_slo(g) for g in (ours, sloth))
    ids = sorted(set(our_names) | set(their_names))
    names = [f"{i}: {odd}" for i in ids for odd in [difference(
        our_names.get(i, set()) - HELPER_RECORDINGS,
        their_names.get(i, set()))] if odd]
    report.cell("recordings", not names, note="; ".join(names))
    keys = [f"{i}: {odd}" for i in ids for odd in [difference(
        set(our_alerts.get(i, {})), set(their_alerts.get(i, {})))] if odd]
    report.cell("alerts", not keys, note="; ".join(keys))
    pairs = [(f"{i} {key[1]}", our_alerts[i][key], their_alerts[i][key])
             for i in ids for key in sorted(set(our_alerts.get(i, {}))
                                            & set(their_alerts.get(i, {})))]
    for part in ("labels", "annotations"):
        odd = [f"{alert}: {changed}" for alert, our, their in pairs
               for changed in [difference(
                   set(without_ids(our.get(part, {})).items()),
                   set(their.get(part, {}).items()))] if changed]
        report.cell(part, not odd, note="; ".join(odd))


def difference(ours: set[Any], theirs: set[Any]) -> str:
    """What only one side has; empty when they are the same."""
    return ", ".join(f"{side} only {sorted(only)}" for side, only in (
        ("ours", ours - theirs), ("Sloth", theirs - ours)) if only)


def without_ids(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k not in SLO_ID_LABELS}


def fired(report: FileReport, column: str, outcome: Outcome) -> None:
    report.cell(column, outcome.passed,
                "" if outcome.ran else "-",
                "" if outcome.passed else outcome.brief())


def check_file(path: Path, gen: Path | None, promtool: str,
               options: SpecOptions) -> FileReport | None:
    """The report of one spec file; None when it is not a spec."""
    report, docs = FileReport(path.name), documents(path)
    if is_rules_file(docs):
        return None
    try:
        specs = parse_specs(path.read_text("utf-8"), options)
    except PluginsRefused:
        report.cells["ours"] = PLUGINS
        return report
    except InvalidField as error:
        report.cell("ours", False, "REFUSED", str(error))
        return report
    # Recordings and alerts: the scenarios keep only the alerts.
    ours = rule_groups_of(render_file(specs, path.name))
    forms = sorted({spec.form for spec in specs})
    slos = sum(len(spec.slos) for spec in specs)
    report.cells.update({"form": ",".join(forms), "SLOs": str(slos),
                         "ours": "generated"})
    checked = check_rules(promtool, ours)
    report.cell("check", checked.passed, note=checked.detail)
    slos_under_test = slos_under_test_of(specs, ours)
    fired(report, "fire ours",
          burn_equivalence(promtool, slos_under_test, ours))
    report.notes += [f"warning: {w}" for spec in specs
                     for w in spec.warnings]
    sides = [ours]
    theirs_path = sloth_output(path, gen) if gen else None
    if theirs_path is not None:
        theirs = rule_groups_of(theirs_path.read_text("utf-8"))
        compare(report, ours, theirs)
        fired(report, "fire Sloth",
              burn_equivalence(promtool, slos_under_test, theirs))
        sides.append(theirs)
    ties = [tie_behaviour(promtool, slos_under_test, groups)
            for groups in sides]
    if ties[0].ran:
        report.cells["tie o/S"] = " ".join(
            [f"{t.tie_fired[0]}/{t.tie_fired[1]}" + ("" if t.passed else "?")
             for t in ties] + ["-"] * (2 - len(ties)))
        report.notes += [f"tie o/S: promtool disagrees with the"
                         f" prediction: {t.brief()}"
                         for t in ties if not t.passed]
    return report


def table(reports: Sequence[FileReport]) -> str:
    rows = [list(COLUMNS)] + [[r.name] + [r.cells.get(c, "-")
                                          for c in COLUMNS[1:]]
                              for r in reports]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width
                               in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def summary(reports: Sequence[FileReport], skipped: Sequence[str]) -> str:
    lines = [table(reports), ""]
    lines += [f"{r.name}: {note}" for r in reports for note in r.notes]
    if skipped:
        lines.append(f"not specs, skipped: {', '.join(skipped)}")
    lines += [
        "recordings: ours may add " + ", ".join(sorted(HELPER_RECORDINGS))
        + " (events SLIs); labels: ours also carry "
        + ", ".join(SLO_ID_LABELS) + ", which Sloth's alerts inherit.",
        "tie o/S: tiers firing with both windows exactly at the"
        " threshold, ours and Sloth's, of all tiers (float rounding; not"
        " a failure)."]
    failed = [r.name for r in reports if r.failed]
    plugins = [r.name for r in reports if r.cells["ours"] == PLUGINS]
    checked = len(reports) - len(plugins)
    lines.append(f"{checked - len(failed)} of {checked} spec files match"
                 + (f"; differing: {', '.join(failed)}" if failed else "")
                 + (f"; skipped, using plugins: {', '.join(plugins)}"
                    if plugins else ""))
    return "\n".join(lines) + "\n"


def spec_files(directory: Path) -> list[Path]:
    if directory.is_file():
        return [directory]
    return sorted(p for p in directory.iterdir() if p.is_file()
                  and p.suffix.lower() in (".yml", ".yaml")
                  and not p.stem.endswith(".gen"))


def run(directory: Path, gen: Path | None, promtool: str,
        options: SpecOptions | None = None) -> tuple[list[FileReport],
                                                     list[str]]:
    """The report of every spec file in `directory`, and the names of
    the files that are not specs."""
    reports, skipped = [], []
    for path in spec_files(directory):
        report = check_file(path, gen, promtool, options or SpecOptions())
        if report is None:
            skipped.append(path.name)
        else:
            reports.append(report)
    return reports, skipped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.sloth_parity",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path, help="spec files")
    parser.add_argument("--gen", type=Path,
                        help="Sloth's generated rules for the same files")
    parser.add_argument("--slo-period-windows-path", type=Path,
                        help="Sloth AlertWindows files, one per period")
    parser.add_argument("--default-slo-period", default=DEFAULT_PERIOD,
                        help="period of specs that name none")
    parser.add_argument("--promtool", default=shutil.which("promtool"),
                        help="promtool to run (default: on PATH)")
    args = parser.parse_args(argv)
    promtool = args.promtool
    if promtool is None:
        print("error: promtool is not installed", file=sys.stderr)
        return 2
    try:
        parse_duration(args.default_slo_period, "--default-slo-period")
        options = SpecOptions(
            default_period=args.default_slo_period,
            windows=read_catalogue(args.slo_period_windows_path))
    except InvalidField as error:
        print(f"error: {error.field}: {error.problem}", file=sys.stderr)
        return 2
    reports, skipped = run(args.directory, args.gen, promtool, options)
    print(summary(reports, skipped), end="")
    return 1 if any(r.failed for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
