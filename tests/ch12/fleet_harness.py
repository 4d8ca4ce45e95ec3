"""What the fleet's tests share: whether any Ray process is left."""

from __future__ import annotations

import subprocess


def ray_processes() -> list[str]:
    """Ray's own processes on this machine: none once a fleet stopped."""
    found = subprocess.run(["pgrep", "-af", "ray::|raylet|gcs_server"],
                           capture_output=True, text=True, check=False)
    return found.stdout.splitlines()
