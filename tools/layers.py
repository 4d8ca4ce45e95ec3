"""Import layering: a chapter builds on earlier chapters, never later.

Chapter packages are the top-level packages named `chNN_topic`. They form
layers in chapter order: `ch06_pipeline` may import `ch04_streaming`,
never the reverse. `tools`, `tests`, `examples` and `bench` sit outside
the layers: they may import any chapter, and no chapter imports them.
The contracts are derived from the packages on disk, so a new chapter is
checked from its first commit, and import-linter checks them.

    python -m tools.layers [--root .] [--show]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

CHAPTER_PACKAGE = re.compile(r"^ch(?P<number>\d{2})_[a-z0-9_]+$")
OUTSIDE = ("tools", "tests", "examples", "bench")


def is_package(path: Path) -> bool:
    return (path / "__init__.py").is_file()


def chapter_packages(root: Path) -> list[str]:
    """Chapter packages under `root`, earliest chapter first."""
    found = [
        p.name for p in root.iterdir()
        if CHAPTER_PACKAGE.match(p.name) and is_package(p)
    ]
    return sorted(found, key=lambda n: (int(n[2:4]), n))


def contract_config(root: Path) -> str | None:
    """The import-linter configuration; None when there is no chapter."""
    chapters = chapter_packages(root)
    if not chapters:
        return None
    outside = [n for n in OUTSIDE if is_package(root / n)]
    # One line per layer, latest chapter on top; chapters that share a
    # number are independent siblings of one layer.
    by_number: dict[str, list[str]] = {}
    for name in chapters:
        by_number.setdefault(name[2:4], []).append(name)
    layers = [" | ".join(group) for group in by_number.values()][::-1]
    lines = [
        "[importlinter]",
        "root_packages =",
        *(f"    {n}" for n in chapters + outside),
        "include_external_packages = False",
        "",
        "[importlinter:contract:chapter-layers]",
        "name = A chapter imports only earlier chapters",
        "type = layers",
        "layers =",
        *(f"    {layer}" for layer in layers),
    ]
    if outside:
        lines += [
            "",
            "[importlinter:contract:outside-layers]",
            "name = No chapter imports tools, tests, examples or bench",
            "type = forbidden",
            "source_modules =",
            *(f"    {n}" for n in chapters),
            "forbidden_modules =",
            *(f"    {n}" for n in outside),
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.layers")
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument(
        "--show", action="store_true", help="print the contracts"
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    config = contract_config(root)
    if config is None:
        print("layers: no chapter packages yet, nothing to check")
        return 0
    if args.show:
        print(config)
    from importlinter.cli import lint_imports

    sys.path.insert(0, str(root))
    with tempfile.NamedTemporaryFile(
        "w", suffix=".ini", prefix="importlinter-"
    ) as file:
        file.write(config)
        file.flush()
        return int(lint_imports(
            config_filename=file.name, no_cache=True, no_logo=True
        ))


if __name__ == "__main__":
    sys.exit(main())
