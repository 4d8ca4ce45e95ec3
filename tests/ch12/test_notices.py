"""Preemption notices as AWS and GCP answer them, and the lab's file.

AWS's instance-action answer gives the time the instance goes; GCP's
`preempted` answers TRUE 30 s ahead; anything else is not a notice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ch12_scaling.notices import (
    GCP_NOTICE_S,
    NoticeError,
    NoticeFile,
    PreemptionNotice,
    parse_notice,
)

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


def aws(seconds: float, action: str = "terminate") -> str:
    when = NOW + timedelta(seconds=seconds)
    return json.dumps({"action": action,
                       "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")})


def test_aws_answers_when_the_instance_goes() -> None:
    assert parse_notice(aws(120), NOW) == PreemptionNotice("aws", 120.0)
    assert parse_notice(aws(-5, "stop"), NOW).seconds_left == 0.0


def test_gcp_answers_true_thirty_seconds_ahead() -> None:
    assert parse_notice("TRUE\n", NOW) == PreemptionNotice(
        "gcp", GCP_NOTICE_S)


@pytest.mark.parametrize("body", [
    "FALSE", "{}", "not json", json.dumps({"action": "reboot",
                                           "time": NOW.isoformat()}),
    json.dumps({"action": "terminate", "time": "tomorrow"}), "[]",
])
def test_anything_else_is_not_a_notice(body: str) -> None:
    with pytest.raises(NoticeError):
        parse_notice(body, NOW)


def test_the_lab_file_is_absent_until_the_notice(tmp_path: Path) -> None:
    notices = NoticeFile(tmp_path / "replica-1", lambda: NOW)
    assert notices.poll() is None
    (tmp_path / "replica-1").write_text(aws(30))
    assert notices.poll() == PreemptionNotice("aws", 30.0)
