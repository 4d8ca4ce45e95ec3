"""Preemption notices: how a spot replica learns it is about to go.

Chapter 12, "Cost optimization: spot and preemptible instances". A
cloud tells a spot instance before it takes it back, through the
instance's metadata service: AWS answers
`/latest/meta-data/spot/instance-action` with the action and the time
it happens (two minutes ahead); GCP's `instance/preempted` turns
`TRUE` 30 seconds before shutdown. A replica polls for that answer and
drains when it comes. In the lab each replica's "metadata service" is
a file named after it in a notice directory, holding exactly what the
provider's endpoint would answer, so a test or the tour preempts one
replica by writing one file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ch12_scaling.preemption import NOTICE_S

GCP_NOTICE_S = NOTICE_S["gcp"]  # from `preempted` turning TRUE to shutdown


class NoticeError(ValueError):
    """A metadata answer that is not a notice either provider sends."""


@dataclass(frozen=True)
class PreemptionNotice:
    provider: str  # "aws" or "gcp"
    seconds_left: float  # from when it was read until the instance goes


def parse_notice(body: str, now: datetime) -> PreemptionNotice:
    """AWS's instance-action JSON, or GCP's `TRUE`."""
    text = body.strip()
    if text == "TRUE":
        return PreemptionNotice("gcp", GCP_NOTICE_S)
    try:
        action = json.loads(text)
        when = datetime.fromisoformat(action["time"])
        if action["action"] not in ("terminate", "stop", "hibernate"):
            raise NoticeError(f"unknown action {action['action']!r}")
    except (ValueError, KeyError, TypeError) as error:
        raise NoticeError(f"not a preemption notice: {error}") from None
    return PreemptionNotice("aws", max(0.0, (when - now).total_seconds()))


@dataclass(frozen=True)
class NoticeFile:
    """The lab's metadata endpoint for one replica: absent until the
    replica is preempted, then the provider's answer."""

    path: Path
    now: Callable[[], datetime]

    def poll(self) -> PreemptionNotice | None:
        try:
            body = self.path.read_text()
        except FileNotFoundError:
            return None
        return parse_notice(body, self.now())
