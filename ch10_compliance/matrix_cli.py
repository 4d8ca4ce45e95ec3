"""`python -m ch10_compliance matrix`: the compliance matrix, from code.

Chapter 10, "Building compliance into the architecture". Prints the
matrix as Markdown (requirements of SOC 2, GDPR, CCPA/CPRA, HIPAA,
BIPA and the EU AI Act with its timeline, each with the control, files
and tests that meet it) and writes it as one self-contained HTML page
(`build/compliance-matrix.html`, or `--html PATH`). When the matrix
names a file or test that does not exist, it says which on stderr and
exits 1: a claim the code no longer backs is an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ch10_compliance.matrix import (
    DEFAULT_MATRIX,
    REPO_ROOT,
    MatrixError,
    load_matrix,
    missing_references,
    render_html,
    render_markdown,
)

DEFAULT_HTML = Path("build/compliance-matrix.html")


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="the compliance matrix: requirement, control, code, "
        "test", description="Print the compliance matrix as Markdown "
        "and write it as HTML.")
    parser.add_argument("--html", type=Path, default=DEFAULT_HTML,
                        help=f"where the HTML page goes ({DEFAULT_HTML})")
    parser.add_argument("--matrix", type=Path, default=DEFAULT_MATRIX,
                        help="the matrix file (the one in the package)")
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help="the repository its paths are inside")


def run(args: argparse.Namespace) -> int:
    try:
        matrix = load_matrix(args.matrix)
    except (MatrixError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(render_markdown(matrix), end="")
    try:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(render_html(matrix), encoding="utf-8")
    except OSError as error:
        print(f"error: cannot write {args.html}: {error}", file=sys.stderr)
        return 2
    print(f"\nwritten: {args.html}", file=sys.stderr)
    missing = missing_references(matrix, args.root)
    for reference in missing:
        print(f"missing: {reference}", file=sys.stderr)
    return 1 if missing else 0
