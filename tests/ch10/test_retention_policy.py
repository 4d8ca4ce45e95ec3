"""The retention policy: the shipped schedule, and every refusal."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ch10_compliance.data_classes import DataClass
from ch10_compliance.retention_policy import (
    DAY_MS,
    DEFAULT_POLICY,
    RetentionPolicyError,
    load_policy,
    parse_policy,
)


def shipped() -> dict[str, Any]:
    with DEFAULT_POLICY.open("rb") as file:
        return tomllib.load(file)


def refusal(raw: dict[str, Any]) -> str:
    with pytest.raises(RetentionPolicyError) as caught:
        parse_policy(raw)
    return str(caught.value)


def test_the_shipped_policy_covers_every_class_with_its_grounds() -> None:
    policy = load_policy()
    assert policy.effective == date(2026, 12, 6)
    assert policy.reviewed_by
    assert set(policy.classes) == set(DataClass)
    assert policy.of(DataClass.AUDIT).keep_days == 6 * 365  # HIPAA
    assert policy.of(DataClass.AUDIO).keep_days < 3 * 365  # BIPA bound
    assert all(c.reason and c.source for c in policy.classes.values())


def test_cutoff_and_expiry_are_the_kept_days_either_side() -> None:
    audio = load_policy().of(DataClass.AUDIO)
    now = 1_780_000_000_000
    assert audio.cutoff_ms(now) == now - 30 * DAY_MS
    assert audio.expires_at_ms(now) == now + 30 * DAY_MS


def test_a_missing_class_is_named() -> None:
    raw = shipped()
    del raw["key_metadata"], raw["usage"]
    message = refusal(raw)
    assert message.startswith("usage, key_metadata: missing")
    assert "kept forever" in message


def test_an_unknown_class_is_named_with_the_known_ones() -> None:
    raw = shipped() | {"voiceprints": {"keep_days": 1}}
    assert refusal(raw) == (
        "voiceprints: not a data class (expected audio, transcript, "
        "usage, audit, key_metadata)")


@pytest.mark.parametrize("days", [0, -30, 1.5, "30", True])
def test_days_must_be_a_positive_whole_number(days: object) -> None:
    raw = shipped()
    raw["audio"]["keep_days"] = days
    assert refusal(raw) == (
        "audio.keep_days: expected a positive whole number of days, "
        f"got {days!r}")


def test_missing_days_are_refused() -> None:
    raw = shipped()
    del raw["transcript"]["keep_days"]
    assert refusal(raw).startswith("transcript.keep_days: expected a "
                                   "positive whole number")


@pytest.mark.parametrize("basis", [None, "", "  "])
def test_a_missing_basis_is_refused(basis: str | None) -> None:
    raw = shipped()
    if basis is None:
        del raw["usage"]["basis"]
    else:
        raw["usage"]["basis"] = basis
    assert refusal(raw).startswith(
        "usage.basis: missing: name the lawful basis (consent, contract")


def test_a_basis_must_be_a_lawful_basis() -> None:
    raw = shipped()
    raw["audit"]["basis"] = "because"
    assert refusal(raw).startswith(
        "audit.basis: 'because' is not a lawful basis (expected one of")


@pytest.mark.parametrize("field", ["reason", "source"])
def test_reason_and_source_are_required(field: str) -> None:
    raw = shipped()
    del raw["audio"][field]
    assert refusal(raw).startswith(f"audio.{field}: missing")


def test_an_unknown_field_is_refused() -> None:
    raw = shipped()
    raw["audio"]["keep_months"] = 1
    assert refusal(raw) == ("audio.keep_months: unknown key (expected "
                            "keep_days, basis, reason, source)")


def test_a_class_must_be_a_table() -> None:
    raw = shipped() | {"audio": 30}
    assert refusal(raw) == "audio: expected a table"


@pytest.mark.parametrize("effective", ["2026-12-06", "next week", None])
def test_the_effective_date_must_be_a_date(effective: object) -> None:
    raw = shipped()
    if effective is None:
        del raw["effective"]
    else:
        raw["effective"] = effective
    assert refusal(raw) == ("effective: expected a date, like 2026-12-06,"
                            f" got {effective!r}")


def test_a_date_and_time_is_not_a_date() -> None:
    raw = shipped()
    raw["effective"] = tomllib.loads("t = 2026-12-06T10:00:00")["t"]
    assert refusal(raw).startswith("effective: expected a date")


def test_a_policy_needs_a_reviewer() -> None:
    raw = shipped()
    del raw["reviewed_by"]
    assert refusal(raw) == ("reviewed_by: missing: who reviewed it, and"
                            " when")


def test_an_impossible_date_in_the_file_is_refused_with_the_path(
        tmp_path: Path) -> None:
    text = DEFAULT_POLICY.read_text().replace(
        "effective = 2026-12-06", "effective = 2026-02-30")
    path = tmp_path / "retention.toml"
    path.write_text(text)
    with pytest.raises(RetentionPolicyError, match=str(path)):
        load_policy(path)


def test_a_missing_file_is_refused_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(RetentionPolicyError) as caught:
        load_policy(path)
    assert str(caught.value) == f"{path}: No such file or directory"
