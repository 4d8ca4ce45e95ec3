"""A development secret generated once into a file only its owner reads.

Chapter 9, "API key management" and "Securing audio data". Production
passes its secrets in the environment, from a secret manager; on a
development machine each is generated the first time it is needed, into
a file under `build/` created with mode 0600 (never readable by other
users, not even for an instant) and read back on every later start. Two
processes starting at once cannot write two different secrets: the file
is created exclusively, so one writes it and the other reads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def generated_once(path: Path, generate: Callable[[], str]) -> str:
    """The text of `path`, written first by `generate` if it is absent."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # owner-only from the start; a racing process wins alone
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as file:
                file.write(generate())
    return path.read_text().strip()
