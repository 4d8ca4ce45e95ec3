"""`python -m ch07_api.tables`: the chapter's tables, from the code.

Chapter 7, "Error handling for ML-specific failures" and "API
versioning strategies". The README's error table and model-version
table are this command's output (`--write README.md` puts them between
their `<!-- tables: NAME -->` markers), and a test holds them equal,
so the documentation cannot drift from what the service does.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from ch07_api.errors import ERRORS, ML_ERRORS
from ch07_api.model_versions import version_table


def markdown(header: Sequence[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def error_table() -> str:
    rows = []
    for kind, mapping in ERRORS.items():
        retry = (f"{mapping.retry_after_s} s" if mapping.retry_after_s
                 else "no")
        rows.append([
            (kind.__doc__ or kind.__name__).strip().rstrip("."),
            "yes" if kind in ML_ERRORS else "",
            str(mapping.status), f"`{mapping.code}`",
            f"`{mapping.openai_type}`", f"`{mapping.rpc_status}`", retry])
    return markdown(["Failure", "ML-specific", "HTTP", "code",
                     "OpenAI `type`", "google.rpc", "Retry-After"], rows)


def model_table() -> str:
    rows = [[f"`{r['model']}`", r["aliases"], r["apis"], r["deprecated"],
             r["sunset"]] for r in version_table()]
    return markdown(["Model version", "Aliases", "Served by",
                     "Deprecated", "Sunset"], rows)


TABLES: dict[str, Callable[[], str]] = {"error": error_table,
                                        "model": model_table}
BLOCK = re.compile(r"(<!-- tables: (\w+) -->\n).*?(<!-- end tables -->)",
                   re.S)


def with_tables(text: str) -> str:
    """`text` with every marked block rewritten from the code."""
    return BLOCK.sub(lambda m: f"{m[1]}{TABLES[m[2]]()}\n{m[3]}", text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ch07_api.tables")
    parser.add_argument("--write", type=Path, metavar="README",
                        help="rewrite the marked tables of this file")
    args = parser.parse_args(argv)
    if args.write:
        args.write.write_text(with_tables(args.write.read_text()))
        return
    print("\n\n".join(table() for table in TABLES.values()))


if __name__ == "__main__":
    main()
