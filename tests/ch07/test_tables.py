"""The README's error and model tables are the code's, not typed copies.

`python -m ch07_api.tables --write ch07_api/README.md` writes them; this
fails when the code changed and the README was not rewritten.
"""

from __future__ import annotations

from pathlib import Path

from ch07_api import tables
from ch07_api.errors import ERRORS, ML_ERRORS

README = Path(tables.__file__).with_name("README.md")


def test_the_readme_holds_the_tables_the_code_makes() -> None:
    text = README.read_text()
    assert tables.with_tables(text) == text
    assert tables.error_table() in text and tables.model_table() in text


def test_every_error_has_a_row_and_the_ml_ones_say_so() -> None:
    table = tables.error_table()
    for kind, mapping in ERRORS.items():
        assert f"`{mapping.code}`" in table, kind
    ml_rows = [line for line in table.splitlines() if "| yes |" in line]
    assert len(ml_rows) == len(ML_ERRORS) == 8


def test_stale_tables_are_rewritten() -> None:
    stale = "<!-- tables: model -->\nold\n<!-- end tables -->"
    assert "old" not in tables.with_tables(stale)
    assert "mock-asr-2026-01" in tables.with_tables(stale)
