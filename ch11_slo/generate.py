"""`rules` and `validate` over files and directories, as Sloth's CLI.

Chapter 11, "Monitoring and alerting on SLO burn rate". A spec file
gives one rules file; a directory of specs (found recursively, *.yaml
and *.yml, filtered by include and exclude patterns, exclude first)
gives a directory of rules files at the same relative paths, as
`sloth generate` does. `validate` reads and generates every spec
without writing anything, and reports each file, and SLOs defined in
more than one file, whose rules would clash in one Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ch11_slo.invalid import InvalidField
from ch11_slo.rules import RuleOptions
from ch11_slo.rules_file import render_file
from ch11_slo.spec import SpecOptions
from ch11_slo.spec_files import parse_specs


@dataclass(frozen=True)
class Generated:
    """The rules of one spec file, and what reading it warned of."""

    rules: str
    slo_ids: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Filters:
    include: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None

    def keep(self, path: Path) -> bool:
        text = str(path)
        if self.exclude is not None and self.exclude.search(text):
            return False
        return self.include is None or bool(self.include.search(text))


def pattern(text: str | None, flag: str) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as error:
        raise InvalidField(flag, f"not a regular expression: {error}"
                           ) from None


def discover(root: Path, filters: Filters) -> list[Path]:
    """The spec files under `root` (or `root` itself, if a file)."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InvalidField("spec", f"{root} is neither a file nor a"
                           " directory")
    found = [path for path in sorted(root.rglob("*"))
             if path.is_file() and path.suffix.lower() in (".yaml", ".yml")
             and filters.keep(path)]
    if not found:
        raise InvalidField("spec", f"no spec files found under {root}")
    return found


def generate(path: Path, spec_options: SpecOptions,
             rule_options: RuleOptions) -> Generated:
    """The rules of the spec file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidField("spec", f"cannot read {path}: {error.strerror}"
                           ) from None
    specs = parse_specs(text, spec_options)
    return Generated(
        render_file(specs, path.name, rule_options),
        tuple(spec.slo_id(slo) for spec in specs
              for slo in spec.slos),
        tuple(warning for spec in specs for warning in spec.warnings))


def generate_tree(root: Path, out: Path, filters: Filters,
                  spec_options: SpecOptions,
                  rule_options: RuleOptions) -> list[tuple[Path,
                                                           Generated]]:
    """Every spec under `root` to rules at the same path under `out`;
    nothing is written unless every spec generates."""
    if not out.is_dir():
        raise InvalidField("--out", (
            f"{out} is not a directory, and the input is one"))
    if out.resolve() == root.resolve():
        raise InvalidField("--out", "must not be the input directory")
    done = [(out / path.relative_to(root),
             generate(path, spec_options, rule_options))
            for path in discover(root, filters)]
    for target, generated in done:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(generated.rules, encoding="utf-8")
    return done


@dataclass(frozen=True)
class Verdict:
    path: Path
    problem: str  # empty when the spec is valid
    slo_ids: tuple[str, ...] = ()


def validate(paths: Sequence[Path], spec_options: SpecOptions,
             rule_options: RuleOptions) -> list[Verdict]:
    """Each file read and generated; then any SLO defined twice."""
    verdicts = []
    for path in paths:
        try:
            generated = generate(path, spec_options, rule_options)
        except InvalidField as error:
            verdicts.append(Verdict(path, str(error)))
        else:
            verdicts.append(Verdict(path, "", generated.slo_ids))
    first: dict[str, Path] = {}
    repeated = []
    for verdict in verdicts:
        for slo_id in verdict.slo_ids:
            if slo_id in first:
                repeated.append(Verdict(verdict.path, (
                    f"SLO {slo_id!r} is also defined in {first[slo_id]}")))
            first.setdefault(slo_id, verdict.path)
    return verdicts + repeated
