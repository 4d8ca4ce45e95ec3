"""README tables are written from benchmark results, and checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.readme_figures import main

README = """# A chapter

<!-- figures: bench/results/ch99.json
Memory wasted (%) | waste_pct
Appends per second | appends_per_s
ratio | ratio
-->
old table
<!-- end figures -->

Text after.
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "ch99.json").write_text(json.dumps({
        "waste_pct": 1.684, "appends_per_s": 8_963_027.2, "ratio": 0.0421,
        "machine": {"git_commit": "abc1234", "cpu": "AMD EPYC",
                    "cores": 2, "recorded_at": "2026-12-06T09:00:00"}}))
    (tmp_path / "ch99_x").mkdir()
    (tmp_path / "ch99_x" / "README.md").write_text(README)
    return tmp_path


def test_tables_are_written_from_the_results(tree: Path) -> None:
    assert main(["--root", str(tree), "--check"]) == 1
    assert main(["--root", str(tree)]) == 0
    text = (tree / "ch99_x" / "README.md").read_text()
    assert "old table" not in text
    assert "| Figure | Value |\n| --- | --- |\n" in text
    assert "| Memory wasted (%) | 1.68 |" in text
    assert "| Appends per second | 8,963,027 |" in text
    assert "| ratio | 0.0421 |" in text
    assert "`make bench` at abc1234, 2026-12-06: AMD EPYC, 2 cores." in text
    assert text.endswith("<!-- end figures -->\n\nText after.\n")
    assert main(["--root", str(tree), "--check"]) == 0


def test_a_figure_missing_from_the_results_is_an_error(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tree / "ch99_x" / "README.md"
    readme.write_text(README.replace("ratio | ratio\n", "Gone | gone\n"))
    assert main(["--root", str(tree)]) == 1
    assert "has no figure 'gone'" in capsys.readouterr().err
    assert readme.read_text() == README.replace("ratio | ratio\n",
                                                "Gone | gone\n")


def test_every_readme_of_this_repository_is_current() -> None:
    assert main(["--check"]) == 0


def test_a_row_may_hold_several_figures(tree: Path) -> None:
    readme = tree / "ch99_x" / "README.md"
    readme.write_text(README.replace(
        "Memory wasted (%) | waste_pct\n",
        "columns: paged | other\nMemory wasted (%) | waste_pct | -\n"
    ).replace("Appends per second | appends_per_s\n", "Appends | - | "
              "appends_per_s\n").replace("ratio | ratio\n", ""))
    assert main(["--root", str(tree)]) == 0
    text = readme.read_text()
    assert ("|  | paged | other |\n| --- | --- | --- |\n"
            "| Memory wasted (%) | 1.68 |  |\n"
            "| Appends |  | 8,963,027 |\n") in text


def test_a_figure_of_a_group_is_named_group_dot_member(tree: Path) -> None:
    results = tree / "bench" / "results" / "ch99.json"
    document = json.loads(results.read_text())
    results.write_text(json.dumps({**document, "by": {"gpu": 94.2}}))
    readme = tree / "ch99_x" / "README.md"
    readme.write_text(README.replace("ratio | ratio\n", "gpu | by.gpu\n"))
    assert main(["--root", str(tree)]) == 0
    assert "| gpu | 94.20 |" in readme.read_text()
    readme.write_text(README.replace("ratio | ratio\n", "x | by.cpu\n"))
    assert main(["--root", str(tree)]) == 1
