"""The layering check: later chapters may import earlier ones only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tools.layers import chapter_packages, contract_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_packages(root: Path, imports: dict[str, str]) -> Path:
    """One package per key; its module imports what the value names."""
    for package, imported in imports.items():
        (root / package).mkdir()
        (root / package / "__init__.py").write_text("")
        (root / package / "mod.py").write_text(imported)
    return root


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tools.layers"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )


def test_later_chapter_may_import_earlier_one(tmp_path: Path) -> None:
    make_packages(tmp_path, {
        "ch04_audio": "",
        "ch06_pipe": "import ch04_audio\n",
        "examples": "import ch06_pipe\nimport ch04_audio\n",
    })
    done = lint(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_earlier_chapter_importing_later_one_fails(tmp_path: Path) -> None:
    make_packages(tmp_path, {
        "ch04_audio": "from ch06_pipe import mod\n",
        "ch06_pipe": "",
    })
    done = lint(tmp_path)
    assert done.returncode == 1
    assert "ch04_audio is not allowed to import ch06_pipe" in done.stdout
    assert "ch04_audio.mod -> ch06_pipe.mod" in done.stdout


def test_chapter_importing_examples_fails(tmp_path: Path) -> None:
    make_packages(tmp_path, {
        "ch04_audio": "import examples\n",
        "examples": "",
    })
    done = lint(tmp_path)
    assert done.returncode == 1
    assert "ch04_audio is not allowed to import examples" in done.stdout


def test_no_chapter_packages_is_nothing_to_check(tmp_path: Path) -> None:
    make_packages(tmp_path, {"examples": ""})
    done = lint(tmp_path)
    assert done.returncode == 0
    assert "no chapter packages yet" in done.stdout


def test_chapters_are_ordered_by_number_not_name(tmp_path: Path) -> None:
    make_packages(tmp_path, {
        "ch11_slo": "", "ch04_streaming": "", "ch08_metering": "",
        "chapter_notes": "",  # not a chapter package: no number
    })
    (tmp_path / "ch05_no_init").mkdir()  # not a package: no __init__.py
    assert chapter_packages(tmp_path) == [
        "ch04_streaming", "ch08_metering", "ch11_slo",
    ]
    config = contract_config(tmp_path)
    assert config is not None
    layers = config.split("layers =\n")[1].split("\n\n")[0].split()
    assert layers == ["ch11_slo", "ch08_metering", "ch04_streaming"]


def test_repository_layering_holds() -> None:
    done = lint(REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
