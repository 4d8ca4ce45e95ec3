"""Durations as Prometheus writes them: 5m, 6h, 3d, 1h30m.

Chapter 11, "Monitoring and alerting on SLO burn rate". SLO periods and
alert windows are whole seconds, parsed from and printed in the
notation of PromQL range selectors, so a window in a rule name
(`ratio_rate30m`) is the window in its query (`[30m]`). Nothing is
rounded: a duration that is not a whole number of seconds is refused.
"""

from __future__ import annotations

import re

from ch11_slo.invalid import InvalidField

UNITS = {"w": 7 * 86_400, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
DURATION = re.compile(r"^(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?$")
FORMS = "forms like 30d, 28d, 7d, 12h, 90m or 1h30m"


def parse_duration(text: object, field: str) -> int:
    """Seconds in `text`; InvalidField naming `field` when unreadable."""
    match = DURATION.match(text) if isinstance(text, str) else None
    if not text or match is None:
        raise InvalidField(field, f"unknown duration {text!r} (use {FORMS})")
    seconds = sum(
        int(part[:-1]) * UNITS[part[-1]] for part in match.groups() if part
    )
    if seconds <= 0:
        raise InvalidField(field, f"duration {text!r} must be positive")
    return seconds


def format_duration(seconds: int) -> str:
    """`seconds` in the largest units that divide it: 5400 -> 1h30m."""
    if seconds <= 0:
        raise ValueError(f"not a positive duration: {seconds} s")
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, UNITS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
