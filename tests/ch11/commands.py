"""What the chapter 11 command tests share: a command's exit status,
argparse's refusals included, and a block of the README that a command
wrote."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ch11_slo.__main__ import main

README = Path(__file__).parents[2] / "ch11_slo" / "README.md"


def exit_status(argv: Sequence[str]) -> int | str | None:
    """`python -m ch11_slo ARGV`'s status, had it run as a program."""
    try:
        return main(list(argv))
    except SystemExit as stopped:  # argparse's own refusals
        return stopped.code


def readme_block(name: str) -> str:
    """The README between `<!-- NAME: COMMAND -->` and `<!-- end NAME -->`:
    what COMMAND printed when the README was written."""
    text = README.read_text(encoding="utf-8")
    after = text.split(f"<!-- {name}: ", 1)[1].split("\n", 1)[1]
    return after.split(f"<!-- end {name} -->", 1)[0]
