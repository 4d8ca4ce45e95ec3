"""promtool for the rule tests: found, run, or the test is skipped.

`make test` puts a promtool unpacked from Debian's prometheus package
(`make promtool`) on PATH when none is installed; a run of pytest alone
looks there too. Without one, the tests that need it are skipped, and
fail in CI.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import yaml

from ch11_slo.burn_rates import decimal_text
from tests.environment import unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
UNPACKED = REPO_ROOT / "build" / "promtool" / "usr" / "bin" / "promtool"
STREAMING_SPEC = REPO_ROOT / "ch11_slo" / "specs" / "streaming.yaml"
STREAMING_RULES = REPO_ROOT / "ch11_slo" / "specs" / "streaming.rules.yml"


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if UNPACKED.is_file():
        return str(UNPACKED)
    unavailable("command not installed: promtool (apt-get install"
                " prometheus, or `make promtool` to unpack it in build/)")


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60,
        check=False,
    )


def counter(*segments: tuple[Fraction | int, int]) -> str:
    """A counter from 0 in promtool's expanding notation: for each
    segment, `count` samples that each add `step`."""
    parts, value = ["0"], Fraction(0)
    for step, count in segments:
        first = value + step
        parts.append(f"{decimal_text(first)}+{decimal_text(Fraction(step))}"
                     f"x{count - 1}")
        value += step * count
    return " ".join(parts)


def write_test_file(
    path: Path,
    rules: Sequence[Path],
    evaluation_interval: str,
    tests: Sequence[Mapping[str, object]],
) -> Path:
    """Write a `promtool test rules` file; return its path."""
    document = {
        "rule_files": [str(p) for p in rules],
        "evaluation_interval": evaluation_interval,
        "tests": [dict(t) for t in tests],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False),
                    encoding="utf-8")
    return path


def promtool_passes(directory: Path, rules: Sequence[Path],
                    interval: str, *tests: Mapping[str, object]) -> None:
    """Run `promtool test rules` (rules every `interval`); assert it
    passes."""
    path = write_test_file(directory / "scenario.test.yml", rules,
                           interval, tests)
    done = run_promtool("test", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
