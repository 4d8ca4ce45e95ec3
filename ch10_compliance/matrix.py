"""The compliance matrix: each requirement, the control, the code, the test.

Chapter 10, "Building compliance into the architecture". An auditor's
question ("how do you meet GDPR Art. 17?") gets an answer that points at
code: the control, the files that implement it and the tests that prove
it, kept in `compliance_matrix.toml` beside the code it names. The file
is loaded strictly (an unknown field, status or framework is refused
with where it was), and `missing_references` finds every file, test
module or test function it names that no longer exists, so a control
renamed or deleted in a refactor fails a test instead of leaving the
matrix claiming it. Requirements met only by contracts or process say
so ("organisational"), and partial ones say what is missing: the matrix
never claims more than the code does. It renders as Markdown for a
terminal or a README and as one self-contained HTML page.
"""

from __future__ import annotations

import ast
import html
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

DEFAULT_MATRIX = Path(__file__).with_name("compliance_matrix.toml")
REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_ID = re.compile(r"^tests/[\w/]+\.py(::\w+)*$")
FILE_PATH = re.compile(r"^[\w.-]+(/[\w.-]+)*$")
CHECK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class MatrixError(ValueError):
    """The matrix file is malformed: the message says where."""


class Status(StrEnum):
    MET = "met"  # code meets it and a test proves it
    PARTIAL = "partial"  # code meets part of it; the note says the rest
    ORGANISATIONAL = "organisational"  # contracts or process: not code

    @property
    def label(self) -> str:
        if self is Status.ORGANISATIONAL:
            return "organisational: not code"
        return self.value


@dataclass(frozen=True)
class Framework:
    key: str
    name: str
    source: str
    nature: str


@dataclass(frozen=True)
class Requirement:
    framework: str
    citation: str  # article, section or criterion
    requirement: str
    control: str
    status: Status
    files: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()  # tests/...py or tests/...py::test_name
    note: str = ""
    evidence: tuple[str, ...] = ()  # checks run by `evidence`

    @property
    def where(self) -> str:
        return f"{self.framework} {self.citation}"


@dataclass(frozen=True)
class Milestone:
    framework: str
    when: date
    applies: str
    was: date | None = None  # the date before a change
    changed_by: str = ""


@dataclass(frozen=True)
class Penalty:
    framework: str
    breach: str
    maximum: str


@dataclass(frozen=True)
class Matrix:
    reviewed: date
    frameworks: tuple[Framework, ...]
    requirements: tuple[Requirement, ...]
    milestones: tuple[Milestone, ...] = ()
    penalties: tuple[Penalty, ...] = ()

    def of(self, framework: str) -> list[Requirement]:
        return [r for r in self.requirements if r.framework == framework]


def load_matrix(path: Path = DEFAULT_MATRIX) -> Matrix:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise MatrixError(f"{path}: {error}") from None
    return parse_matrix(data)


def parse_matrix(data: Mapping[str, Any]) -> Matrix:
    """A matrix from parsed TOML, every entry checked."""
    known(data, "the matrix", {"reviewed", "frameworks", "requirements",
                               "milestones", "penalties"})
    reviewed = data.get("reviewed")
    if not isinstance(reviewed, date):
        raise MatrixError("reviewed must be a date, e.g. 2026-12-06")
    frameworks = tuple(framework(e) for e in tables(data, "frameworks"))
    keys = [f.key for f in frameworks]
    twice(keys, "framework")
    requirements = tuple(requirement(e, keys)
                         for e in tables(data, "requirements"))
    twice([r.where for r in requirements], "requirement")
    return Matrix(reviewed, frameworks, requirements,
                  tuple(milestone(e, keys) for e in tables(data,
                                                           "milestones")),
                  tuple(penalty(e, keys) for e in tables(data, "penalties")))


def tables(data: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    entries = data.get(name, [])
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) for e in entries):
        raise MatrixError(f"{name} must be an array of tables "
                          f"([[{name}]])")
    return entries


def known(entry: Mapping[str, Any], where: str, fields: set[str]) -> None:
    unknown = sorted(set(entry) - fields)
    if unknown:
        raise MatrixError(f"{where}: unknown field {unknown[0]!r} "
                          f"(known: {', '.join(sorted(fields))})")


def text(entry: Mapping[str, Any], name: str, where: str,
         required: bool = True) -> str:
    value = entry.get(name, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise MatrixError(f"{where}: {name} must be a non-empty string")
    return value.strip()


def texts(entry: Mapping[str, Any], name: str, where: str,
          shape: re.Pattern[str], expected: str) -> tuple[str, ...]:
    values = entry.get(name, [])
    if not isinstance(values, list) or not all(
            isinstance(v, str) for v in values):
        raise MatrixError(f"{where}: {name} must be a list of strings")
    for value in values:
        if not shape.match(value) or ".." in value.split("/"):
            raise MatrixError(f"{where}: {name} entry {value!r} is not "
                              f"{expected}")
    return tuple(values)


def framework_key(entry: Mapping[str, Any], where: str,
                  keys: Sequence[str]) -> str:
    key = text(entry, "framework", where)
    if key not in keys:
        raise MatrixError(f"{where}: framework {key!r} is not one of "
                          f"{', '.join(keys)}")
    return key


def twice(names: Iterable[str], kind: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise MatrixError(f"{kind} {name} appears twice")
        seen.add(name)


def framework(entry: Mapping[str, Any]) -> Framework:
    known(entry, "a framework", {"key", "name", "source", "nature"})
    key = text(entry, "key", "a framework")
    return Framework(key, *(text(entry, f, f"framework {key}")
                            for f in ("name", "source", "nature")))


def requirement(entry: Mapping[str, Any],
                keys: Sequence[str]) -> Requirement:
    where = f"requirement {entry.get('framework')} {entry.get('citation')}"
    known(entry, where, {"framework", "citation", "requirement", "control",
                         "status", "files", "tests", "note", "evidence"})
    status = text(entry, "status", where)
    if status not in set(Status):
        raise MatrixError(f"{where}: status {status!r} is not one of "
                          f"{', '.join(Status)}")
    found = Requirement(
        framework=framework_key(entry, where, keys),
        citation=text(entry, "citation", where),
        requirement=text(entry, "requirement", where),
        control=text(entry, "control", where), status=Status(status),
        files=texts(entry, "files", where, FILE_PATH,
                    "a path inside the repository"),
        tests=texts(entry, "tests", where, TEST_ID,
                    "tests/...py or tests/...py::test_name"),
        note=text(entry, "note", where, required=False),
        evidence=texts(entry, "evidence", where, CHECK_NAME,
                       "the name of a check"))
    if found.status is Status.MET and not (found.files and found.tests):
        raise MatrixError(f"{where}: met needs the files that implement "
                          "it and the tests that prove it")
    if found.status is not Status.MET and not found.note:
        raise MatrixError(f"{where}: {found.status} needs a note saying "
                          "what the code does not do")
    return found


def milestone(entry: Mapping[str, Any], keys: Sequence[str]) -> Milestone:
    where = f"milestone {entry.get('date')}"
    known(entry, where, {"framework", "date", "applies", "was",
                         "changed_by"})
    when, was = entry.get("date"), entry.get("was")
    if not isinstance(when, date) or not isinstance(was, date | None):
        raise MatrixError(f"{where}: date and was must be dates")
    changed_by = text(entry, "changed_by", where, required=False)
    if (was is None) != (not changed_by):
        raise MatrixError(f"{where}: a moved date needs both was and "
                          "changed_by")
    return Milestone(framework_key(entry, where, keys), when,
                     text(entry, "applies", where), was, changed_by)


def penalty(entry: Mapping[str, Any], keys: Sequence[str]) -> Penalty:
    where = f"penalty {entry.get('breach')}"
    known(entry, where, {"framework", "breach", "maximum"})
    return Penalty(framework_key(entry, where, keys),
                   text(entry, "breach", where),
                   text(entry, "maximum", where))


def missing_references(matrix: Matrix, root: Path = REPO_ROOT) -> list[str]:
    """Each file, test module or test function the matrix names that
    does not exist under `root`, with the requirement naming it."""
    missing: list[str] = []
    modules: dict[str, ast.Module] = {}
    for r in matrix.requirements:
        missing += [f"{r.where}: no file {path}"
                    for path in r.files if not (root / path).is_file()]
        for test_id in r.tests:
            module, *names = test_id.split("::")
            if not (root / module).is_file():
                missing.append(f"{r.where}: no test module {module}")
                continue
            if module not in modules:
                modules[module] = ast.parse((root / module).read_bytes())
            if not defines(modules[module], names):
                missing.append(f"{r.where}: {module} has no test "
                               f"{'::'.join(names)}")
    return missing


def defines(tree: ast.Module, names: Sequence[str]) -> bool:
    """Whether the module defines `names`: a function, or a class and
    then a method of it, as pytest's node ids name them."""
    body = tree.body
    for name in names:
        found = [node for node in body
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef
                               | ast.ClassDef) and node.name == name]
        if not found:
            return False
        body = found[0].body if isinstance(found[0], ast.ClassDef) else []
    return True


def day(when: date) -> str:
    return f"{when.day} {when:%b %Y}"


def counts(matrix: Matrix, key: str) -> dict[Status, int]:
    found = [r.status for r in matrix.of(key)]
    return {status: found.count(status) for status in Status}


# Markdown ---------------------------------------------------------------


def cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def code_list(values: Sequence[str]) -> str:
    return "<br>".join(f"`{v}`" for v in values) or "-"


def markdown_status(r: Requirement) -> str:
    parts = [f"**{r.status.label}**", *([cell(r.note)] if r.note else [])]
    if r.evidence:
        parts.append("evidence: " + ", ".join(f"`{e}`" for e in r.evidence))
    return "<br>".join(parts)


def render_markdown(matrix: Matrix) -> str:
    lines = [f"# Compliance matrix (reviewed {day(matrix.reviewed)})", "",
             "| Framework | " + " | ".join(s.label for s in Status) + " |",
             "|---" * (len(Status) + 1) + "|"]
    for f in matrix.frameworks:
        found = counts(matrix, f.key)
        lines.append(f"| {f.name} | "
                     + " | ".join(str(found[s]) for s in Status) + " |")
    for f in matrix.frameworks:
        lines += ["", f"## {f.name}: {f.source}", "", f.nature, "",
                  "| Citation | Requirement | Control | Implemented in "
                  "| Proved by | Status |", "|---" * 6 + "|"]
        lines += [f"| {cell(r.citation)} | {cell(r.requirement)} "
                  f"| {cell(r.control)} | {code_list(r.files)} "
                  f"| {code_list(r.tests)} | {markdown_status(r)} |"
                  for r in matrix.of(f.key)]
        lines += markdown_timeline(matrix, f.key)
        lines += markdown_penalties(matrix, f.key)
    return "\n".join(lines) + "\n"


def markdown_timeline(matrix: Matrix, key: str) -> list[str]:
    found = sorted((m for m in matrix.milestones if m.framework == key),
                   key=lambda m: m.when)
    if not found:
        return []
    lines = ["", "### Timeline", "", "| Date | What applies | Changed |",
             "|---|---|---|"]
    for m in found:
        changed = (f"was {day(m.was)}: {cell(m.changed_by)}"
                   if m.was else "")
        lines.append(f"| {day(m.when)} | {cell(m.applies)} | {changed} |")
    return lines


def markdown_penalties(matrix: Matrix, key: str) -> list[str]:
    found = [p for p in matrix.penalties if p.framework == key]
    if not found:
        return []
    return ["", "### Penalties", "", "| Breach | Maximum |", "|---|---|",
            *(f"| {cell(p.breach)} | {cell(p.maximum)} |" for p in found)]


# HTML --------------------------------------------------------------------

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto;
       max-width: 80rem; padding: 0 1rem; color: #1d2327; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #c3c4c7; padding: 0.35rem 0.5rem;
         text-align: left; vertical-align: top; }
th { background: #f0f0f1; }
code { font-size: 0.85em; word-break: break-all; }
.status { font-weight: 600; white-space: nowrap; padding: 0 0.3rem;
          border-radius: 0.25rem; }
.met { background: #d1f2d9; } .partial { background: #fcf0c3; }
.organisational { background: #e3e8f8; }
.moved { color: #8a2424; } .note { color: #50575e; }
"""


def esc(value: str) -> str:
    return html.escape(value, quote=True)


def html_codes(values: Sequence[str]) -> str:
    return "<br>".join(f"<code>{esc(v)}</code>" for v in values) or "-"


def html_row(cells: Iterable[str], tag: str = "td") -> str:
    return ("<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells)
            + "</tr>")


def html_status(r: Requirement) -> str:
    parts = [f'<span class="status {r.status.value}">'
             f"{esc(r.status.label)}</span>"]
    if r.note:
        parts.append(f'<div class="note">{esc(r.note)}</div>')
    if r.evidence:
        parts.append("evidence: " + html_codes(r.evidence))
    return "".join(parts)


def render_html(matrix: Matrix) -> str:
    """One page, no external assets: it can be mailed to an auditor."""
    title = f"Compliance matrix (reviewed {day(matrix.reviewed)})"
    body = [f"<h1>{esc(title)}</h1>", "<table>",
            html_row(["Framework", *(esc(s.label) for s in Status)], "th")]
    for f in matrix.frameworks:
        found = counts(matrix, f.key)
        body.append(html_row([f'<a href="#{esc(f.key)}">{esc(f.name)}</a>',
                              *(str(found[s]) for s in Status)]))
    body.append("</table>")
    for f in matrix.frameworks:
        body += [f'<h2 id="{esc(f.key)}">{esc(f.name)}: {esc(f.source)}'
                 "</h2>", f"<p>{esc(f.nature)}</p>", "<table>",
                 html_row(["Citation", "Requirement", "Control",
                           "Implemented in", "Proved by", "Status"], "th")]
        body += [html_row([esc(r.citation), esc(r.requirement),
                           esc(r.control), html_codes(r.files),
                           html_codes(r.tests), html_status(r)])
                 for r in matrix.of(f.key)]
        body.append("</table>")
        body += html_timeline(matrix, f.key)
        body += html_penalties(matrix, f.key)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
            '<meta charset="utf-8">\n'
            f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n"
            "</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def html_timeline(matrix: Matrix, key: str) -> list[str]:
    found = sorted((m for m in matrix.milestones if m.framework == key),
                   key=lambda m: m.when)
    if not found:
        return []
    rows = [html_row(["Date", "What applies", "Changed"], "th")]
    for m in found:
        changed = (f'<span class="moved">was {esc(day(m.was))}</span>: '
                   f"{esc(m.changed_by)}" if m.was else "")
        rows.append(html_row([esc(day(m.when)), esc(m.applies), changed]))
    return ["<h3>Timeline</h3>", "<table>", *rows, "</table>"]


def html_penalties(matrix: Matrix, key: str) -> list[str]:
    found = [p for p in matrix.penalties if p.framework == key]
    if not found:
        return []
    rows = [html_row([esc(p.breach), esc(p.maximum)]) for p in found]
    return ["<h3>Penalties</h3>", "<table>",
            html_row(["Breach", "Maximum"], "th"), *rows, "</table>"]
