"""House rules that no linter knows: chapter READMEs, module names."""

from __future__ import annotations

from pathlib import Path

from tools.layers import chapter_packages

REPO_ROOT = Path(__file__).resolve().parent.parent
VAGUE_NAMES = {"utils", "helpers", "manager", "common", "misc"}


def project_modules() -> list[Path]:
    skipped = {".venv", "build", ".git", "node_modules"}
    return [
        p for p in REPO_ROOT.rglob("*.py")
        if not skipped.intersection(p.relative_to(REPO_ROOT).parts)
    ]


def test_every_chapter_package_has_a_readme() -> None:
    missing = [
        name for name in chapter_packages(REPO_ROOT)
        if not (REPO_ROOT / name / "README.md").is_file()
    ]
    assert missing == []


def test_no_module_has_a_name_without_a_job() -> None:
    vague = [
        p.relative_to(REPO_ROOT).as_posix() for p in project_modules()
        if p.stem in VAGUE_NAMES
    ]
    assert vague == [], "name a module for its one job (style.md)"
