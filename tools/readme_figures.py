"""Figures in the READMEs come from benchmark results, never by hand.

A README marks a table with the results file it comes from and, one a
line, each row's label and the figures in it (`group.name` for one of
a group of figures); a first line `columns:`
names the columns when a row holds several figures, and `-` leaves a
cell empty:

    <!-- figures: bench/results/ch03_gpu.json
    columns: bf16 | fp8
    KV sequences at once | paged_sequences_bf16 | paged_sequences_fp8
    -->
    (the table, written here)
    <!-- end figures -->

`python -m tools.readme_figures` writes every such table from its
results file, with the commit and machine that measured them; with
`--check` (part of `make check`) it fails when a table differs from
what the results say, so a README never drifts from `make bench`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

BLOCK = re.compile(
    r"(?P<head><!-- figures: (?P<source>\S+)\n(?P<spec>.*?)-->\n)"
    r"(?P<table>.*?)"
    r"(?P<tail><!-- end figures -->)",
    re.S,
)


class FiguresError(ValueError):
    """A marked table that cannot be written from its results."""


def formatted(value: float) -> str:
    if float(value).is_integer() or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def cell(results: dict[str, object], name: str, source: str) -> str:
    """A figure by name; `group.name` for one of a group's."""
    if name == "-":
        return ""
    group, _, member = name.partition(".")
    value = results.get(name)
    if value is None and member and isinstance(results.get(group), dict):
        value = results[group].get(member)  # type: ignore[attr-defined]
    if not isinstance(value, int | float):
        raise FiguresError(f"{source} has no figure {name!r}")
    return formatted(value)


def table(results: dict[str, object], spec: str, source: str) -> str:
    rows = [[part.strip() for part in line.split("|")]
            for line in spec.strip().splitlines()]
    header = ["Figure", "Value"]
    if rows and rows[0][0].startswith("columns:"):
        first = rows.pop(0)
        header = ["", first[0].removeprefix("columns:").strip(), *first[1:]]
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---" for _ in header) + " |"]
    for label, *names in rows:
        cells = [cell(results, name, source) for name in names]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    machine = results.get("machine")
    if isinstance(machine, dict):
        lines.append("")
        lines.append(
            f"`make bench` at {machine.get('git_commit')}, "
            f"{str(machine.get('recorded_at', ''))[:10]}: "
            f"{machine.get('cpu')}, {machine.get('cores')} cores.")
    return "\n".join(lines) + "\n"


def rewrite(text: str, root: Path) -> str:
    def render(block: re.Match[str]) -> str:
        source = block["source"]
        path = root / source
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise FiguresError(f"{source}: {error}") from None
        body = table(results, block["spec"], source)
        return f"{block['head']}{body}{block['tail']}"

    return BLOCK.sub(render, text)


def readmes(root: Path) -> list[Path]:
    return [*sorted(root.glob("*/README.md")), root / "README.md"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.readme_figures")
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--check", action="store_true",
                        help="fail if a table differs from its results")
    args = parser.parse_args(argv)
    stale = []
    for readme in readmes(args.root):
        if not readme.is_file():
            continue
        text = readme.read_text()
        try:
            fresh = rewrite(text, args.root)
        except FiguresError as error:
            print(f"{readme}: {error}", file=sys.stderr)
            return 1
        if fresh != text:
            stale.append(readme)
            if not args.check:
                readme.write_text(fresh)
    if args.check and stale:
        names = ", ".join(str(p) for p in stale)
        print(f"figures differ from bench/results in {names}: run"
              " python -m tools.readme_figures", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
