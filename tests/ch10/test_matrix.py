"""The compliance matrix: its facts, its refusals, its renderings, and
that every file and test it names exists."""

from __future__ import annotations

import argparse
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ch10_compliance import matrix_cli
from ch10_compliance.matrix import (
    Matrix,
    MatrixError,
    Status,
    load_matrix,
    missing_references,
    parse_matrix,
    render_html,
    render_markdown,
)

FRAMEWORK = {"key": "gdpr", "name": "GDPR", "source": "Regulation",
             "nature": "Law."}
MET: dict[str, Any] = {
    "framework": "gdpr", "citation": "Art. 17", "requirement": "Erasure",
    "control": "Crypto-shredding", "status": "met",
    "files": ["pkg/erase.py"], "tests": ["tests/test_erase.py::test_gone"]}
TEST_MODULE = '''
def test_gone():
    pass

async def test_async_gone():
    pass

class TestReceipt:
    def test_signed(self):
        pass
'''


def small(**changes: Any) -> dict[str, Any]:
    """A valid one-requirement matrix, with `changes` to its entry."""
    return {"reviewed": date(2026, 12, 6), "frameworks": [FRAMEWORK],
            "requirements": [{**MET, **changes}]}


def repository(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/erase.py").write_text("")
    (root / "tests").mkdir()
    (root / "tests/test_erase.py").write_text(TEST_MODULE)
    return root


def command(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    matrix_cli.add_parser(commands, "matrix")
    return parser.parse_args(["matrix", *argv])


def test_every_mapped_file_and_test_exists() -> None:
    assert missing_references(load_matrix()) == []


def test_a_missing_file_module_or_test_is_reported(tmp_path: Path) -> None:
    root = repository(tmp_path)
    matrix = parse_matrix(small(
        files=["pkg/erase.py", "pkg/gone.py"],
        tests=["tests/test_erase.py::test_gone",
               "tests/test_erase.py::test_async_gone",
               "tests/test_erase.py::TestReceipt::test_signed",
               "tests/test_erase.py",
               "tests/test_erase.py::test_renamed",
               "tests/test_erase.py::TestReceipt::test_unsigned",
               "tests/test_erase.py::test_gone::test_inner",
               "tests/test_gone.py"]))
    assert missing_references(matrix, root) == [
        "gdpr Art. 17: no file pkg/gone.py",
        "gdpr Art. 17: tests/test_erase.py has no test test_renamed",
        "gdpr Art. 17: tests/test_erase.py has no test "
        "TestReceipt::test_unsigned",
        "gdpr Art. 17: tests/test_erase.py has no test "
        "test_gone::test_inner",
        "gdpr Art. 17: no test module tests/test_gone.py",
    ]


def test_every_framework_of_the_chapter_has_requirements() -> None:
    matrix = load_matrix()
    assert [f.key for f in matrix.frameworks] == [
        "soc2", "gdpr", "ccpa", "hipaa", "bipa", "eu-ai-act"]
    assert all(matrix.of(f.key) for f in matrix.frameworks)
    citations = {r.where for r in matrix.requirements}
    assert {"soc2 C1.2", "gdpr Art. 5(1)(e)", "gdpr Art. 17",
            "gdpr Art. 44-49", "ccpa 1798.130(a)(2)", "hipaa 164.312(b)",
            "hipaa 164.316(b)(2)(i)", "bipa 740 ILCS 14/15(a)",
            "eu-ai-act Art. 5(1)(f)"} <= citations


def test_the_ai_act_timeline_has_the_dates_the_omnibus_moved() -> None:
    matrix = load_matrix()
    timeline = {m.when: m for m in matrix.milestones
                if m.framework == "eu-ai-act"}
    assert "Art. 5(1)(f)" in timeline[date(2025, 2, 2)].applies
    assert "general-purpose" in timeline[date(2025, 8, 2)].applies
    annex_iii, annex_i = timeline[date(2027, 12, 2)], timeline[
        date(2028, 8, 2)]
    assert (annex_iii.was, annex_i.was) == (date(2026, 8, 2),
                                            date(2027, 8, 2))
    assert "7 May 2026" in annex_iii.changed_by
    maxima = [p.maximum for p in matrix.penalties
              if p.framework == "eu-ai-act"]
    assert [re.findall(r"[\d.]+", m) for m in maxima] == [
        ["35", "7"], ["15", "3"], ["7.5", "1"]]


def test_contracts_are_not_claimed_as_code() -> None:
    matrix = load_matrix()
    status = {r.where: r.status for r in matrix.requirements}
    assert status["hipaa 164.308(b), 164.314(a)"] is Status.ORGANISATIONAL
    assert status["gdpr Art. 28"] is Status.ORGANISATIONAL
    assert status["gdpr Art. 44-49"] is Status.PARTIAL
    assert all(r.note for r in matrix.requirements
               if r.status is not Status.MET)


@pytest.mark.parametrize(("changes", "message"), [
    ({"status": "done"}, "status 'done' is not one of met, partial"),
    ({"framework": "sox"}, "framework 'sox' is not one of gdpr"),
    ({"test": []}, "unknown field 'test'"),
    ({"tests": []}, "met needs the files that implement it and the tests"),
    ({"status": "partial"}, "partial needs a note"),
    ({"tests": ["test_erase.py"]}, "'test_erase.py' is not tests/...py"),
    ({"tests": ["tests/x.py::test[1]"]}, "is not tests/...py"),
    ({"files": ["../secrets.py"]}, "not a path inside the repository"),
    ({"files": ["/etc/passwd"]}, "not a path inside the repository"),
    ({"files": "pkg/erase.py"}, "files must be a list of strings"),
    ({"evidence": ["Encryption On"]}, "is not the name of a check"),
    ({"control": " "}, "control must be a non-empty string"),
])
def test_a_malformed_requirement_is_refused_saying_where(
    changes: dict[str, Any], message: str,
) -> None:
    where = r"^requirement \w+ Art. 17: "
    with pytest.raises(MatrixError, match=where) as e:
        parse_matrix(small(**changes))
    assert message in str(e.value)


def test_malformed_matrices_are_refused() -> None:
    twice = small()
    twice["requirements"].append(MET)
    moved = {"framework": "gdpr", "date": date(2027, 12, 2),
             "applies": "x", "was": date(2026, 8, 2)}
    cases = [
        (twice, "requirement gdpr Art. 17 appears twice"),
        ({**small(), "reviewed": "2026-12-06"}, "reviewed must be a date"),
        ({**small(), "milestones": [moved]},
         "a moved date needs both was and changed_by"),
        ({**small(), "requirements": {"a": 1}}, "array of tables"),
        ({**small(), "frameworks": [FRAMEWORK, FRAMEWORK]},
         "framework gdpr appears twice"),
    ]
    for data, message in cases:
        with pytest.raises(MatrixError, match=re.escape(message)):
            parse_matrix(data)


def test_a_file_that_is_not_toml_is_refused_with_its_path(
    tmp_path: Path,
) -> None:
    path = tmp_path / "matrix.toml"
    path.write_text("reviewed = \n")
    with pytest.raises(MatrixError, match=re.escape(str(path))):
        load_matrix(path)


def test_markdown_has_a_table_per_framework_and_the_timeline() -> None:
    text = render_markdown(load_matrix())
    assert text.startswith("# Compliance matrix (reviewed 6 Dec 2026)")
    assert text.count("| Citation | Requirement | Control |") == 6
    assert "| 2 Dec 2027 | High-risk obligations for Annex III" in text
    assert "was 2 Aug 2026: Digital Omnibus" in text
    assert "**organisational: not code**" in text


def test_markdown_cells_cannot_break_their_table() -> None:
    matrix = parse_matrix(small(control="keys | tokens\nand scopes"))
    row = next(line for line in render_markdown(matrix).splitlines()
               if line.startswith("| Art. 17"))
    assert "keys \\| tokens and scopes" in row


def test_html_is_one_self_contained_escaped_page() -> None:
    page = render_html(parse_matrix(small(control="<script>x</script>")))
    assert page.startswith("<!DOCTYPE html>")
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<script" not in page
    assert not re.search(r"https?://|src=|<link", page)
    real = render_html(load_matrix())
    assert not re.search(r"https?://|src=|<link|<script", real)
    assert real.count("<h2 id=") == 6


def test_the_command_prints_markdown_and_writes_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    root = repository(tmp_path / "repo")
    source = tmp_path / "matrix.toml"
    source.write_text(MATRIX_TOML)
    html = tmp_path / "out" / "matrix.html"
    code = matrix_cli.run(command(["--matrix", str(source), "--html",
                                   str(html), "--root", str(root)]))
    out, err = capsys.readouterr()
    assert code == 0
    assert "| Art. 17 | Erasure | Crypto-shredding |" in out
    assert "Crypto-shredding" in html.read_text()
    assert f"written: {html}" in err


def test_the_command_names_what_is_missing_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "matrix.toml"
    source.write_text(MATRIX_TOML)
    code = matrix_cli.run(command([
        "--matrix", str(source), "--html", str(tmp_path / "m.html"),
        "--root", str(tmp_path)]))
    assert code == 1
    assert ("missing: gdpr Art. 17: no file pkg/erase.py"
            in capsys.readouterr().err)


def test_the_command_refuses_a_broken_matrix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "matrix.toml"
    source.write_text(MATRIX_TOML.replace('"met"', '"done"'))
    code = matrix_cli.run(command(["--matrix", str(source)]))
    assert code == 2
    assert "status 'done' is not one of" in capsys.readouterr().err


def test_the_command_says_when_the_page_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "matrix.toml"
    source.write_text(MATRIX_TOML)
    (tmp_path / "file").write_text("")
    code = matrix_cli.run(command([
        "--matrix", str(source), "--html", str(tmp_path / "file/m.html")]))
    assert code == 2
    assert "cannot write" in capsys.readouterr().err


def test_the_real_matrix_renders_through_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    matrix: Matrix = load_matrix()
    code = matrix_cli.run(command(["--html", str(tmp_path / "m.html")]))
    assert code == (1 if missing_references(matrix) else 0)
    assert "## EU AI Act: Regulation (EU) 2024/1689" in capsys.readouterr().out


MATRIX_TOML = '''
reviewed = 2026-12-06

[[frameworks]]
key = "gdpr"
name = "GDPR"
source = "Regulation (EU) 2016/679"
nature = "Law."

[[requirements]]
framework = "gdpr"
citation = "Art. 17"
requirement = "Erasure"
control = "Crypto-shredding"
status = "met"
files = ["pkg/erase.py"]
tests = ["tests/test_erase.py::test_gone"]
'''
