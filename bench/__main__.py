"""Run the benchmarks and record their figures: `make bench`.

    python -m bench                 # every bench/chNN_*.py
    python -m bench ch11_slo        # only these

Each module's `run()` returns named figures: numbers, or a group of
named numbers (one figure per policy, say); they are written with the
machine record to `bench/results/<package>.json` and printed as one
table, a group's figures as `group.name`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.machine import machine_info

BENCH_DIR = Path(__file__).parent
RESULTS_DIR = BENCH_DIR / "results"

Figures = Mapping[str, float | Mapping[str, float]]


class BenchmarkError(ValueError):
    """A benchmark returned something that is not a set of figures."""


def discover(bench_dir: Path = BENCH_DIR) -> list[str]:
    """Benchmark modules: those named after a chapter package."""
    return sorted(p.stem for p in bench_dir.glob("ch[0-9][0-9]_*.py"))


def is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def validate(package: str, figures: object) -> dict[str, Any]:
    if not isinstance(figures, Mapping) or not figures:
        raise BenchmarkError(f"{package}: run() must return named figures")
    checked: dict[str, Any] = {}
    for name, value in figures.items():
        group = isinstance(value, Mapping) and value and all(
            isinstance(k, str) and is_number(v) for k, v in value.items())
        if not isinstance(name, str) or not (is_number(value) or group):
            raise BenchmarkError(
                f"{package}: figure {name!r} must be a finite number or"
                f" named finite numbers, got {value!r}"
            )
        checked[name] = dict(value) if group else value
    return checked


def flat(figures: Mapping[str, object]) -> list[tuple[str, float]]:
    """Each figure, a group's as `group.name`."""
    rows: list[tuple[str, float]] = []
    for name, value in figures.items():
        if isinstance(value, Mapping):
            rows += [(f"{name}.{key}", v) for key, v in value.items()]
        elif isinstance(value, int | float):
            rows.append((name, value))
    return rows


def record(
    package: str, figures: dict[str, object], results_dir: Path
) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{package}.json"
    document = {**figures, "machine": machine_info()}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def table(rows: list[tuple[str, str, float]]) -> str:
    header = ("package", "figure", "value")
    cells = [header] + [(p, f, f"{v:,.3f}") for p, f, v in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(3)]
    lines = [
        f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}"
        for a, b, c in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def run_all(
    packages: Sequence[str],
    load: Callable[[str], Callable[[], object]],
    results_dir: Path,
) -> list[tuple[str, str, float]]:
    rows = []
    for package in packages:
        print(f"running bench/{package}.py ...", flush=True)
        figures = validate(package, load(package)())
        path = record(package, figures, results_dir)
        print(f"  wrote {path}")
        rows += [(package, name, value) for name, value in flat(figures)]
    return rows


def load_module_run(package: str) -> Callable[[], object]:
    module = importlib.import_module(f"bench.{package}")
    run: Callable[[], object] = module.run
    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("packages", nargs="*", help="default: all")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    available = discover()
    unknown = sorted(set(args.packages) - set(available))
    if unknown:
        print(f"no benchmark for: {', '.join(unknown)}", file=sys.stderr)
        return 2
    packages = args.packages or available
    if not packages:
        print("no benchmarks yet: add bench/<package>.py with run()")
        return 0
    try:
        rows = run_all(packages, load_module_run, args.results)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
