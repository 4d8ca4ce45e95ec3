"""What a test needs from the machine, and what happens without it.

On a reader's machine a test whose tool or server is missing is skipped
with the reason. In CI (the environment variable `CI` is set) nothing
may be skipped that way: the same test fails, so a missing install step
cannot hide behind a green run.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required when CI is set)", pytrace=False)
    pytest.skip(reason)


def require_commands(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        unavailable(f"command not installed: {', '.join(missing)}")
