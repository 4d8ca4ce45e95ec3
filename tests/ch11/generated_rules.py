"""Rules generated from a spec written in a test, run in promtool.

Chapter 11, "Monitoring and alerting on SLO burn rate". The Sloth
comparison tests write a small spec, generate its rules as `python -m
ch11_slo rules` does, and feed synthetic series to `promtool test
rules`, with hand-worked values to expect. rate() and sums over
recorded rates leave float noise, so values are compared rounded to
twelve decimals: PromQL's round(v, 1e-12) divides an integer by 1e12,
as Python's float of the rounded fraction does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import yaml

from ch11_slo.rules_file import render_file
from ch11_slo.spec_files import parse_specs

DIGITS = 12


def write_rules(directory: Path, spec_text: str, name: str) -> Path:
    """The rules of `spec_text`, written to `<name>.rules.yml`."""
    path = directory / f"{name}.rules.yml"
    path.write_text(render_file(parse_specs(spec_text), f"{name}.yaml"),
                    encoding="utf-8")
    return path


def write_plain_rules(directory: Path, name: str,
                      rules: Sequence[Mapping[str, str]]) -> Path:
    """A one-group rules file of hand-written rules."""
    path = directory / f"{name}.rules.yml"
    document = {"groups": [{"name": name, "rules": [dict(r) for r in rules]}]}
    path.write_text(yaml.safe_dump(document, sort_keys=False),
                    encoding="utf-8")
    return path


def selector(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def rounded(expr: str) -> str:
    return f"round(({expr}), 0.{'0' * (DIGITS - 1)}1)"


def exact(value: Fraction | int) -> float:
    """A hand-worked value as rounded() leaves a computed one."""
    return float(round(Fraction(value), DIGITS))


def expect(expr: str, eval_time: str,
           *samples: tuple[Mapping[str, str], Fraction | int]
           ) -> dict[str, object]:
    """A promql_expr_test of `expr`, rounded: exactly these samples (no
    sample at all when none is given)."""
    return {"expr": rounded(expr), "eval_time": eval_time,
            "exp_samples": [{"labels": selector(labels),
                             "value": exact(value)}
                            for labels, value in samples]}
