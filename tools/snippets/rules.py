"""What a printed snippet must be: narrow, short, and executed by tests.

Print pages hold 79 columns and about one screen of code, and CI proves
that every executable line the book shows was run by the test suite,
using the coverage data of that run.
"""

from __future__ import annotations

import re
from pathlib import Path

import coverage

from tools.snippets.markers import Problem, Snippet

MAX_COLUMNS = 79
MAX_LINES = 40
# coverage's own pattern: a printed line must not opt out of the check.
NO_COVER = re.compile(r"#\s*(pragma|PRAGMA)[:\s]?\s*(no|NO)\s*(cover|COVER)")


def check_shape(snippet: Snippet) -> list[Problem]:
    """Width as printed (dedented) and length in lines."""
    problems = []
    printed = snippet.text.splitlines()
    for (number, _), line in zip(snippet.lines, printed, strict=True):
        width = len(line.expandtabs(4))
        if width > MAX_COLUMNS:
            problems.append(Problem(
                snippet.path, number,
                f"snippet {snippet.name!r}: line is {width} columns"
                f" (max {MAX_COLUMNS})",
            ))
    if len(snippet.lines) > MAX_LINES:
        problems.append(Problem(
            snippet.path, snippet.start_line - 1,
            f"snippet {snippet.name!r} is {len(snippet.lines)} lines"
            f" (max {MAX_LINES})",
        ))
    return problems


def check_executed(
    root: Path, snippets: list[Snippet], data_file: Path
) -> list[Problem]:
    """Every statement in a Python snippet ran under the tests."""
    if not data_file.is_file():
        return [Problem(data_file, 1, "coverage data file not found")]
    cov = coverage.Coverage(data_file=str(data_file))
    cov.load()
    problems = []
    for snippet in snippets:
        if snippet.path.suffix != ".py":
            continue
        source = str((root / snippet.path).resolve())
        _, _, _, missing, _ = cov.analysis2(source)
        for number, text in snippet.lines:
            if number in missing:
                problems.append(Problem(
                    snippet.path, number,
                    f"snippet {snippet.name!r}: line not executed by the"
                    " tests",
                ))
            if NO_COVER.search(text):
                problems.append(Problem(
                    snippet.path, number,
                    f"snippet {snippet.name!r}: line excluded from coverage",
                ))
    return problems
