"""Command line of the snippet toolchain: `extract` and `check`.

    python -m tools.snippets extract          # build/snippets/ + index
    python -m tools.snippets check            # markers, widths, contract
    python -m tools.snippets check --coverage .coverage   # + executed

Errors are printed as `file:line: message`, one per line, and make the
command exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.snippets.contract import (
    Placement,
    check_contract,
    load_contract,
)
from tools.snippets.markers import Problem, Snippet, collect
from tools.snippets.rules import check_executed, check_shape

OUT_DIR = Path("build/snippets")


def gather(
    root: Path,
) -> tuple[list[Snippet], dict[str, Placement], list[Problem]]:
    """Snippets, their placements, and every static problem."""
    snippets, problems = collect(root)
    placements, contract_problems = load_contract(root)
    problems += contract_problems
    if not contract_problems:
        problems += check_contract(root, snippets, placements)
    for snippet in snippets:
        problems += check_shape(snippet)
    return snippets, placements, problems


def extract(root: Path, out_dir: Path) -> list[Problem]:
    snippets, placements, problems = gather(root)
    if problems:
        return problems
    if out_dir.exists():
        shutil.rmtree(out_dir)
    index = []
    for snippet in sorted(snippets, key=lambda s: s.name):
        target = out_dir / snippet.package / (
            snippet.name + snippet.path.suffix
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(snippet.text, encoding="utf-8")
        placement = placements[snippet.name]
        index.append({
            "name": snippet.name,
            "package": snippet.package,
            "source": snippet.path.as_posix(),
            "start_line": snippet.start_line,
            "end_line": snippet.end_line,
            "chapter": placement.chapter,
            "section": placement.section,
            "sha256": snippet.sha256,
            "file": target.relative_to(out_dir).as_posix(),
        })
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "index.json").write_text(
        json.dumps({"snippets": index}, indent=2) + "\n", encoding="utf-8"
    )
    print(f"extracted {len(index)} snippets to {out_dir}")
    return []


def check(root: Path, coverage_file: Path | None) -> list[Problem]:
    snippets, _, problems = gather(root)
    if coverage_file is not None:
        problems += check_executed(root, snippets, coverage_file)
    if not problems:
        executed = " and executed" if coverage_file else ""
        print(f"{len(snippets)} snippets well-formed{executed}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.snippets")
    parser.add_argument("--root", type=Path, default=Path("."))
    commands = parser.add_subparsers(dest="command", required=True)
    extract_cmd = commands.add_parser("extract", help="write snippets")
    extract_cmd.add_argument("--out", type=Path, default=None)
    check_cmd = commands.add_parser("check", help="find problems")
    check_cmd.add_argument(
        "--coverage", type=Path, default=None, metavar="DATA_FILE",
        help="coverage data of the test run: flag unexecuted lines",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.command == "extract":
        problems = extract(root, args.out or root / OUT_DIR)
    else:
        problems = check(root, args.coverage)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
