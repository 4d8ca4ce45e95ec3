"""The snippet toolchain: every defect it promises to catch, it catches.

Each test plants one defect in a small tree under tmp_path and checks the
error names the right file and line.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from coverage import CoverageData

from tools.snippets.__main__ import main
from tools.snippets.markers import Snippet, collect, source_files

GOOD_MODULE = '''\
"""A module with two snippets."""


# --8<-- [start:add]
def add(a: int, b: int) -> int:
    return a + b
# --8<-- [end:add]


class Box:
    # --8<-- [start:boxed]
    def boxed(self) -> list[int]:
        return [1]
    # --8<-- [end:boxed]
'''

GOOD_CONTRACT = '''\
[add]
chapter = 4
section = "Audio fundamentals"

[boxed]
chapter = 6
section = "Partial results"
'''


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text) if name.endswith(".toml")
                        else text)
    return root


def good_tree(root: Path) -> Path:
    return make_tree(root, {
        "ch04_demo/__init__.py": "",
        "ch04_demo/maths.py": GOOD_MODULE,
        "book/snippets.toml": GOOD_CONTRACT,
    })


def run(root: Path, *args: str) -> int:
    return main(["--root", str(root), *args])


def errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def only_add_contract(root: Path) -> None:
    (root / "book").mkdir(exist_ok=True)
    (root / "book/snippets.toml").write_text(
        '[add]\nchapter = 4\nsection = "Audio fundamentals"\n'
    )


def test_well_formed_tree_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(good_tree(tmp_path), "check") == 0
    assert "2 snippets well-formed" in capsys.readouterr().out


def test_extract_writes_dedented_snippets_and_index(tmp_path: Path) -> None:
    root = good_tree(tmp_path)
    assert run(root, "extract") == 0
    out = root / "build/snippets"
    boxed = (out / "ch04_demo/boxed.py").read_text()
    assert boxed.startswith("def boxed(self)")  # dedented
    index = json.loads((out / "index.json").read_text())["snippets"]
    by_name = {entry["name"]: entry for entry in index}
    assert by_name["add"] == {
        "name": "add",
        "package": "ch04_demo",
        "source": "ch04_demo/maths.py",
        "start_line": 5,
        "end_line": 6,
        "chapter": 4,
        "section": "Audio fundamentals",
        "sha256": by_name["add"]["sha256"],
        "file": "ch04_demo/add.py",
    }
    snippets, _ = collect(root)
    add = next(s for s in snippets if s.name == "add")
    assert by_name["add"]["sha256"] == add.sha256
    assert (out / "ch04_demo/add.py").read_text() == add.text


def test_extract_removes_stale_snippets(tmp_path: Path) -> None:
    root = good_tree(tmp_path)
    stale = root / "build/snippets/ch04_demo/renamed_long_ago.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("old\n")
    assert run(root, "extract") == 0
    assert not stale.exists()


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("# --8<-- [start:a]\nx = 1\n", 1, "'a' has no end marker"),
        ("x = 1\n# --8<-- [end:a]\n", 2, "'a' has no start marker"),
        (
            "# --8<-- [start:a]\n# --8<-- [start:b]\nx = 1\n"
            "# --8<-- [end:a]\n# --8<-- [end:b]\n",
            4, "crossed markers: 'a' ends while 'b'",
        ),
        (
            "# --8<-- [start:a]\nx = 1\n# --8<-- [end:a]\n"
            "# --8<-- [start:a]\ny = 2\n# --8<-- [end:a]\n",
            4, "duplicate start marker for 'a' (first at line 1)",
        ),
        ("# --8<-- [start:a]\n\n# --8<-- [end:a]\n", 1, "'a' is empty"),
        ("# --8<-- [start:]\n", 1, "malformed marker"),
        ("# --8<-- [start:Big]\nx = 1\n# --8<-- [end:Big]\n", 1,
         "snippet name 'Big'"),
    ],
    ids=["unmatched-start", "unmatched-end", "crossed", "duplicate",
         "empty", "malformed", "uppercase"],
)
def test_marker_defects_are_reported_at_their_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    body: str, line: int, message: str,
) -> None:
    make_tree(tmp_path, {"pkg/mod.py": body, "book/snippets.toml": ""})
    assert run(tmp_path, "check") == 1
    assert any(
        e.startswith(f"pkg/mod.py:{line}: ") and message in e
        for e in errors(capsys)
    )


def test_same_name_in_two_files_is_a_duplicate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = good_tree(tmp_path)
    make_tree(root, {"ch05_other/copy.py": GOOD_MODULE})
    assert run(root, "check") == 1
    assert "ch05_other/copy.py:4: duplicate snippet name 'add'" in (
        errors(capsys)[0]
    )


def test_nested_snippets_leave_out_the_inner_markers(tmp_path: Path) -> None:
    make_tree(tmp_path, {"pkg/mod.py": (
        "# --8<-- [start:outer]\na = 1\n# --8<-- [start:inner]\nb = 2\n"
        "# --8<-- [end:inner]\nc = 3\n# --8<-- [end:outer]\n"
    )})
    snippets, problems = collect(tmp_path)
    assert problems == []
    text = {s.name: s.text for s in snippets}
    assert text == {"inner": "b = 2\n", "outer": "a = 1\nb = 2\nc = 3\n"}


def test_escaped_marker_is_text_not_a_marker(tmp_path: Path) -> None:
    make_tree(tmp_path, {"pkg/mod.py": 'DOC = ";--8<-- [start:x]"\n'})
    assert collect(tmp_path) == ([], [])


def test_line_of_80_columns_is_too_wide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = good_tree(tmp_path)
    fits = "    return " + "a" * 68  # 79 columns once dedented
    too_wide = "    return " + "a" * 69  # 80
    for line in (fits, too_wide):
        assert len(line) in (79, 80)
    source = root / "ch04_demo/maths.py"
    text = source.read_text().replace("    return a + b", fits)
    source.write_text(text)
    assert run(root, "check") == 0
    source.write_text(text.replace(fits, too_wide))
    assert run(root, "check") == 1
    assert errors(capsys) == [
        "ch04_demo/maths.py:6: snippet 'add': line is 80 columns (max 79)"
    ]


def test_width_is_measured_as_printed_after_dedent(tmp_path: Path) -> None:
    root = good_tree(tmp_path)
    source = root / "ch04_demo/maths.py"
    # 83 columns in the file, 79 in print: the method is dedented by 4.
    wide = "        return " + "a" * 68
    assert len(wide) == 83
    source.write_text(source.read_text().replace("        return [1]", wide))
    assert run(root, "check") == 0


def test_snippet_over_40_lines_is_too_long(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def module(lines: int) -> str:
        body = "".join(f"x{i} = {i}\n" for i in range(lines))
        return f"# --8<-- [start:add]\n{body}# --8<-- [end:add]\n"

    make_tree(tmp_path, {"pkg/m.py": module(40)})
    only_add_contract(tmp_path)
    assert run(tmp_path, "check") == 0
    (tmp_path / "pkg/m.py").write_text(module(41))
    assert run(tmp_path, "check") == 1
    assert errors(capsys) == ["pkg/m.py:1: snippet 'add' is 41 lines (max 40)"]


def coverage_file(root: Path, executed: dict[str, list[int]]) -> Path:
    """Coverage data as a test run records it: lines run, per file."""
    data = CoverageData(basename=str(root / ".coverage"))
    data.add_lines(
        {str((root / name).resolve()): lines
         for name, lines in executed.items()}
    )
    data.write()
    return root / ".coverage"


def test_unexecuted_snippet_line_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = good_tree(tmp_path)
    # Lines 1-14 ran except 13: `boxed` was defined but never called.
    ran = [n for n in range(1, 15) if n != 13]
    data = coverage_file(root, {"ch04_demo/maths.py": ran})
    assert run(root, "check", "--coverage", str(data)) == 1
    assert errors(capsys) == [
        "ch04_demo/maths.py:13: snippet 'boxed':"
        " line not executed by the tests"
    ]
    data = coverage_file(root, {"ch04_demo/maths.py": list(range(1, 15))})
    assert run(root, "check", "--coverage", str(data)) == 0


def test_file_never_imported_counts_as_unexecuted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = good_tree(tmp_path)
    data = coverage_file(root, {"ch04_demo/__init__.py": []})
    assert run(root, "check", "--coverage", str(data)) == 1
    assert len(errors(capsys)) == 4  # two statements in each snippet


def test_coverage_exclusion_inside_a_snippet_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = good_tree(tmp_path)
    source = root / "ch04_demo/maths.py"
    source.write_text(source.read_text().replace(
        "return a + b", "return a + b  # pragma: no cover"
    ))
    data = coverage_file(root, {"ch04_demo/maths.py": list(range(1, 15))})
    assert run(root, "check", "--coverage", str(data)) == 1
    assert "maths.py:6: snippet 'add': line excluded from coverage" in (
        errors(capsys)[0]
    )


def test_missing_coverage_data_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = good_tree(tmp_path)
    assert run(root, "check", "--coverage", str(root / "nope")) == 1
    assert "coverage data file not found" in errors(capsys)[0]


def test_non_python_snippets_are_checked_for_shape_only(
    tmp_path: Path,
) -> None:
    root = good_tree(tmp_path)
    make_tree(root, {"protos/speech.proto": (
        "// --8<-- [start:proto_msg]\nmessage A { int32 x = 1; }\n"
        "// --8<-- [end:proto_msg]\n"
    )})
    with (root / "book/snippets.toml").open("a") as contract:
        contract.write('\n[proto_msg]\nchapter = 5\nsection = "gRPC"\n')
    data = coverage_file(root, {"ch04_demo/maths.py": list(range(1, 15))})
    assert run(root, "check", "--coverage", str(data)) == 0
    assert run(root, "extract") == 0
    assert (root / "build/snippets/protos/proto_msg.proto").is_file()


def test_snippet_missing_from_contract_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = good_tree(tmp_path)
    only_add_contract(root)
    assert run(root, "check") == 1
    assert errors(capsys) == [
        "ch04_demo/maths.py:11: snippet 'boxed' is not placed in"
        " book/snippets.toml"
    ]


def test_contract_naming_a_missing_snippet_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = good_tree(tmp_path)
    with (root / "book/snippets.toml").open("a") as contract:
        contract.write('\n[vanished]\nchapter = 7\nsection = "SSE"\n')
    assert run(root, "check") == 1
    assert errors(capsys) == [
        "book/snippets.toml:9: snippet 'vanished' is named here but not"
        " in the code"
    ]


@pytest.mark.parametrize(
    ("contract", "message"),
    [
        ("[add]\nchapter = 14\nsection = 'x'\n", "chapter must be"),
        ("[add]\nchapter = 4\n", "needs exactly `chapter` and `section`"),
        ("[add]\nchapter = 4\nsection = ' '\n", "section is empty"),
        ("[Add]\nchapter = 4\nsection = 'x'\n", "invalid snippet name"),
        ("[add\n", "invalid TOML"),
    ],
)
def test_invalid_contract_entries_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    contract: str, message: str,
) -> None:
    root = good_tree(tmp_path)
    (root / "book/snippets.toml").write_text(contract)
    assert run(root, "check") == 1
    assert any(
        e.startswith("book/snippets.toml:") and message in e
        for e in errors(capsys)
    )


def test_missing_contract_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tree(tmp_path, {"pkg/m.py": "x = 1\n"})
    assert run(tmp_path, "check") == 1
    assert errors(capsys) == ["book/snippets.toml:1: contract file is missing"]


def test_extract_refuses_a_broken_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = good_tree(tmp_path)
    only_add_contract(root)
    assert run(root, "extract") == 1
    assert not (root / "build/snippets/index.json").exists()
    assert errors(capsys)


def test_source_scan_skips_tests_build_and_hidden_folders(
    tmp_path: Path,
) -> None:
    make_tree(tmp_path, {
        "pkg/a.py": "", "tests/t.py": "", "build/b.py": "",
        ".venv/v.py": "", "pkg/notes.md": "", "protos/s.proto": "",
    })
    assert [p.as_posix() for p in source_files(tmp_path)] == [
        "pkg/a.py", "protos/s.proto",
    ]


def test_snippet_at_top_level_belongs_to_the_root_package() -> None:
    snippet = Snippet("x", Path("setup.py"), 2, 2, ((2, "x = 1"),))
    assert snippet.package == "."


def test_protocol_stubs_are_not_executable_lines(tmp_path: Path) -> None:
    make_tree(tmp_path, {"pkg/proto.py": (
        "from typing import Protocol\n\n\n"
        "# --8<-- [start:shape]\n"
        "class Shape(Protocol):\n"
        "    def area(self) -> float: ...\n"
        "# --8<-- [end:shape]\n"
    )})
    (tmp_path / "book").mkdir()
    (tmp_path / "book/snippets.toml").write_text(
        '[shape]\nchapter = 4\nsection = "x"\n')
    data = coverage_file(tmp_path, {"pkg/proto.py": [1, 5]})
    assert run(tmp_path, "check", "--coverage", str(data)) == 0
