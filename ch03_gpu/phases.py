"""Phase marks: when a process reached each step of its cold start.

Chapter 3, "Cold start anatomy". A service calls `mark("imported")`
and so on as it starts; when `CH03_PHASE_LOG` names a file, each mark
is appended there as one JSON line with the time and the process id,
so the marks of a service, its worker processes and the lab that
started them land on one timeline. Unset, a mark costs one lookup.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

PHASE_LOG_ENV = "CH03_PHASE_LOG"


@dataclass(frozen=True)
class PhaseMark:
    phase: str
    at: float  # time.monotonic(), seconds
    pid: int


def mark(phase: str) -> None:
    """Record that this process has just reached `phase`."""
    path = os.environ.get(PHASE_LOG_ENV)
    if not path:
        return
    # The monotonic clock is one for the whole machine (CLOCK_MONOTONIC
    # on Linux), so marks of different processes compare; and unlike
    # the wall clock it never steps while a cold start is timed.
    line = json.dumps({"phase": phase, "at": time.monotonic(),
                       "pid": os.getpid()})
    # One short append per mark: processes writing the same file at
    # once do not interleave inside a line.
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")


def read_marks(path: Path) -> list[PhaseMark]:
    """Every mark in the file, in the order they were written."""
    if not path.exists():
        return []
    marks = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            marks.append(PhaseMark(str(record["phase"]),
                                   float(record["at"]), int(record["pid"])))
    return marks
