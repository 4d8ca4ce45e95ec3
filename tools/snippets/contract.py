"""The contract with the manuscript: `book/snippets.toml`.

Each table names one snippet and says where the book prints it:

    [endpointing]
    chapter = 4
    section = "Voice Activity Detection"

The manuscript includes snippets by name, so a name that disappears from
the code, or code that grows a snippet nobody placed, is an error.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from tools.snippets.markers import NAME, Problem, Snippet

CONTRACT_PATH = Path("book/snippets.toml")
CHAPTERS = range(1, 14)


@dataclass(frozen=True)
class Placement:
    chapter: int
    section: str


def line_of(text: str, name: str) -> int:
    """The line of a snippet's table header, for error messages."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() in (f"[{name}]", f'["{name}"]'):
            return number
    return 1


def load_contract(
    root: Path,
) -> tuple[dict[str, Placement], list[Problem]]:
    path = root / CONTRACT_PATH
    if not path.is_file():
        return {}, [Problem(CONTRACT_PATH, 1, "contract file is missing")]
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return {}, [Problem(CONTRACT_PATH, 1, f"invalid TOML: {error}")]
    placements, problems = {}, []
    for name, entry in raw.items():
        where = line_of(text, name)
        if not NAME.match(name):
            problems.append(Problem(
                CONTRACT_PATH, where, f"invalid snippet name {name!r}"
            ))
            continue
        if not isinstance(entry, dict) or set(entry) != {
            "chapter", "section"
        }:
            problems.append(Problem(
                CONTRACT_PATH, where,
                f"{name!r} needs exactly `chapter` and `section`",
            ))
            continue
        chapter, section = entry["chapter"], entry["section"]
        if not isinstance(chapter, int) or chapter not in CHAPTERS:
            problems.append(Problem(
                CONTRACT_PATH, where,
                f"{name!r}: chapter must be a number from 1 to 13",
            ))
            continue
        if not isinstance(section, str) or not section.strip():
            problems.append(Problem(
                CONTRACT_PATH, where, f"{name!r}: section is empty"
            ))
            continue
        placements[name] = Placement(chapter, section)
    return placements, problems


def check_contract(
    root: Path, snippets: list[Snippet], placements: dict[str, Placement]
) -> list[Problem]:
    """Both directions: every placed name exists, every snippet is placed."""
    text = (root / CONTRACT_PATH).read_text(encoding="utf-8")
    in_code = {s.name for s in snippets}
    problems = [
        Problem(CONTRACT_PATH, line_of(text, name),
                f"snippet {name!r} is named here but not in the code")
        for name in sorted(set(placements) - in_code)
    ]
    problems += [
        Problem(s.path, s.start_line - 1,
                f"snippet {s.name!r} is not placed in {CONTRACT_PATH}")
        for s in snippets
        if s.name not in placements
    ]
    return problems
