"""What an import costs a fresh interpreter, to decide what to defer.

Chapter 3, "Cold start mitigation" (lazy imports). `python -X
importtime` reports each module's own and cumulative import time; the
lab reads the cumulative time of the modules a start could avoid, and
times fresh interpreters importing what a process imported before and
after their imports were deferred: the saving, measured whole.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Sequence


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True,
                          text=True, check=True, timeout=60)


def imports_s(modules: Sequence[str]) -> float:
    """`-X importtime`'s total for importing `modules` in a fresh
    interpreter: the cumulative times of the top-level imports."""
    code = "; ".join(f"import {m}" for m in modules)
    report = _python("-X", "importtime", "-c", code).stderr
    total_us = 0
    for line in report.splitlines():
        fields = line.removeprefix("import time:").split("|")
        # Top level: the name is not indented under another import.
        if len(fields) == 3 and fields[2].startswith(" ") and not (
                fields[2].startswith("  ")) and fields[1].strip().isdigit():
            total_us += int(fields[1])
    return total_us / 1e6


def start_s(modules: Sequence[str], runs: int) -> float:
    """Median wall time of a fresh interpreter importing `modules`."""
    code = "; ".join(f"import {m}" for m in modules) or "pass"
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        _python("-c", code)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def compare_s(before: Sequence[str], after: Sequence[str], runs: int
              ) -> tuple[float, float]:
    """Median start of a fresh interpreter importing `before`, and one
    importing `after`: the difference is what deferring the rest took
    off a start. Alternated, so load elsewhere falls on both alike."""
    befores, afters = [], []
    for _ in range(runs):
        befores.append(start_s(before, 1))
        afters.append(start_s(after, 1))
    return statistics.median(befores), statistics.median(afters)
