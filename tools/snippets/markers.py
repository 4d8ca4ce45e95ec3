"""Finding the snippet regions that the book prints.

A region is a pymdownx.snippets section: a start marker and an end
marker, each on a comment line of its own, named alike. This module
reads source files into `Snippet` records and reports every marker
problem as a `Problem` naming the file and line.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# The section pattern of pymdownx.snippets, so that exactly the lines the
# book build treats as markers are treated as markers here.
SECTION = re.compile(
    r"""(?xi)
    ^(?P<pre>.*?)
    (?P<escape>;*)
    (?P<inline_marker>-{1,}8<-{1,}[ \t]+)
    \[[ \t]*(?P<type>start|end)[ \t]*:[ \t]*(?P<name>[a-z][-_0-9a-z]*)[ \t]*\]
    (?P<post>.*?)$
    """
)
# Anything that looks like an attempt at a marker but is not one.
MARKER_LIKE = re.compile(r"-{1,}8<-{1,}[ \t]*\[")
NAME = re.compile(r"^[a-z][_0-9a-z]*$")

SOURCE_SUFFIXES = frozenset(
    {".py", ".proto", ".js", ".html", ".css", ".sh", ".sql",
     ".toml", ".yml", ".yaml"}
)
SKIPPED_DIRS = frozenset(
    {"build", "tests", "node_modules", "__pycache__", "dist"}
)


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path.as_posix()}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Snippet:
    """One named region: its source and the text the book prints."""

    name: str
    path: Path  # relative to the repository root
    start_line: int  # first line after the start marker
    end_line: int  # last line before the end marker
    lines: tuple[tuple[int, str], ...]  # (line number, text), markers out

    @property
    def package(self) -> str:
        return self.path.parts[0] if len(self.path.parts) > 1 else "."

    @property
    def text(self) -> str:
        return textwrap.dedent("".join(t + "\n" for _, t in self.lines))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True)
class Marker:
    kind: str  # start or end
    name: str
    line: int


def source_files(root: Path) -> Iterator[Path]:
    """Files that may hold snippets, relative to `root`, sorted."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(p.startswith(".") or p in SKIPPED_DIRS for p in rel.parts):
            continue
        if path.is_file() and path.suffix in SOURCE_SUFFIXES:
            yield rel


def find_markers(
    path: Path, lines: list[str]
) -> tuple[list[Marker], list[Problem]]:
    markers, problems = [], []
    for number, line in enumerate(lines, start=1):
        match = SECTION.match(line)
        if match and match["escape"]:
            continue  # `;` escapes a marker, so the book prints it as is
        if match is None:
            if MARKER_LIKE.search(line):
                problems.append(Problem(path, number, "malformed marker"))
            continue
        name = match["name"]
        if not NAME.match(name):
            problems.append(Problem(
                path, number,
                f"snippet name {name!r}: use lowercase letters, digits"
                " and underscores",
            ))
        markers.append(Marker(match["type"].lower(), name, number))
    return markers, problems


def parse_file(
    root: Path, path: Path
) -> tuple[list[Snippet], list[Problem]]:
    """Pair the markers of one file into snippets."""
    lines = (root / path).read_text(encoding="utf-8").splitlines()
    markers, problems = find_markers(path, lines)
    marker_lines = {m.line for m in markers}
    open_stack: list[Marker] = []
    seen: dict[str, int] = {}
    snippets = []
    for marker in markers:
        if marker.kind == "start":
            if marker.name in seen or any(
                m.name == marker.name for m in open_stack
            ):
                first = seen.get(marker.name) or next(
                    m.line for m in open_stack if m.name == marker.name
                )
                problems.append(Problem(
                    path, marker.line,
                    f"duplicate start marker for {marker.name!r}"
                    f" (first at line {first})",
                ))
                continue
            open_stack.append(marker)
            continue
        opened = [m for m in open_stack if m.name == marker.name]
        if not opened:
            problems.append(Problem(
                path, marker.line,
                f"end marker for {marker.name!r} has no start marker",
            ))
            continue
        start = opened[-1]
        if open_stack[-1] is not start:
            inner = open_stack[-1]
            problems.append(Problem(
                path, marker.line,
                f"crossed markers: {marker.name!r} ends while"
                f" {inner.name!r} (line {inner.line}) is still open",
            ))
        open_stack.remove(start)
        seen[marker.name] = start.line
        body = tuple(
            (n, lines[n - 1])
            for n in range(start.line + 1, marker.line)
            if n not in marker_lines
        )
        if not any(text.strip() for _, text in body):
            problems.append(Problem(
                path, start.line, f"snippet {marker.name!r} is empty"
            ))
            continue
        snippets.append(Snippet(
            marker.name, path, start.line + 1, marker.line - 1, body
        ))
    for marker in open_stack:
        problems.append(Problem(
            path, marker.line,
            f"start marker for {marker.name!r} has no end marker",
        ))
    return snippets, problems


def collect(
    root: Path, files: Iterable[Path] | None = None
) -> tuple[list[Snippet], list[Problem]]:
    """Every snippet under `root`, and every marker problem."""
    snippets: list[Snippet] = []
    problems: list[Problem] = []
    for path in files if files is not None else source_files(root):
        found, wrong = parse_file(root, path)
        snippets += found
        problems += wrong
    first_seen: dict[str, Snippet] = {}
    for snippet in snippets:
        other = first_seen.setdefault(snippet.name, snippet)
        if other is not snippet:
            problems.append(Problem(
                snippet.path, snippet.start_line - 1,
                f"duplicate snippet name {snippet.name!r}"
                f" (also {other.path.as_posix()}:{other.start_line - 1})",
            ))
    return snippets, problems
