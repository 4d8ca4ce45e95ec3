"""The benchmark runner: figures plus machine record, or a clear error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.__main__ import (
    BenchmarkError,
    discover,
    main,
    run_all,
    table,
    validate,
)

Loader = Callable[[str], Callable[[], object]]


def loader(results: dict[str, object]) -> Loader:
    return lambda package: lambda: results[package]


def test_results_file_holds_figures_and_machine(tmp_path: Path) -> None:
    rows = run_all(
        ["ch99_demo"],
        loader({"ch99_demo": {"p95_ms": 12.5, "streams": 200}}),
        tmp_path,
    )
    assert rows == [("ch99_demo", "p95_ms", 12.5),
                    ("ch99_demo", "streams", 200)]
    document = json.loads((tmp_path / "ch99_demo.json").read_text())
    assert document["p95_ms"] == 12.5 and document["streams"] == 200
    machine = document["machine"]
    assert machine["cores"] >= 1
    assert machine["python"].startswith("3.")
    assert {"cpu", "os", "recorded_at", "git_commit"} <= set(machine)


@pytest.mark.parametrize(
    "figures",
    [{}, {"x": "fast"}, {"x": float("nan")}, {"x": True}, [1.0],
     {"x": {}}, {"x": {"a": "slow"}}, {"x": {"a": {"b": 1.0}}}],
    ids=["empty", "text", "nan", "bool", "list", "empty group",
         "text in a group", "nested group"],
)
def test_figures_must_be_named_finite_numbers(figures: object) -> None:
    with pytest.raises(BenchmarkError, match="ch99_demo"):
        validate("ch99_demo", figures)


def test_table_lines_up_columns() -> None:
    lines = table([("ch11_slo", "eval_ms", 12.3456)]).splitlines()
    assert lines[0].split() == ["package", "figure", "value"]
    assert set(lines[1]) == {"-"}
    assert lines[2].split() == ["ch11_slo", "eval_ms", "12.346"]


def test_discovery_finds_modules_named_for_chapters(tmp_path: Path) -> None:
    for name in ("ch04_streaming.py", "ch11_slo.py", "machine.py"):
        (tmp_path / name).write_text("")
    assert discover(tmp_path) == ["ch04_streaming", "ch11_slo"]


def test_unknown_benchmark_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ch99_nothing"]) == 2
    assert "no benchmark for: ch99_nothing" in capsys.readouterr().err


def test_a_group_of_figures_is_kept_and_listed_by_member(
        tmp_path: Path) -> None:
    figures = {"minutes": {"reactive": 12.0, "scheduled": 7}, "p95": 3.5}
    rows = run_all(["ch99_demo"], loader({"ch99_demo": figures}), tmp_path)
    assert rows == [("ch99_demo", "minutes.reactive", 12.0),
                    ("ch99_demo", "minutes.scheduled", 7),
                    ("ch99_demo", "p95", 3.5)]
    document = json.loads((tmp_path / "ch99_demo.json").read_text())
    assert document["minutes"] == {"reactive": 12.0, "scheduled": 7}
