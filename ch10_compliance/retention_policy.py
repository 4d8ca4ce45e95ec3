"""The retention schedule: how long each data class is kept, and why.

Chapter 10, "Data retention and deletion policies for audio data". A
retention policy is a dated document with a reviewer, not a constant
in the code: `retention.toml` names, for every data class, the days it
is kept, the lawful basis for keeping it, the reason for the number and
the rule or comparison it rests on. Loading it refuses anything a
deletion job could misread: a class left out (it would be kept
forever), days that are not a positive whole number, a missing basis
or source, an effective date that is not a date.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ch10_compliance.data_classes import DataClass

DEFAULT_POLICY = Path(__file__).with_name("retention.toml")
DAY_MS = 86_400_000
# GDPR Art. 6(1): the lawful bases for processing, keeping included.
BASES = ("consent", "contract", "legal_obligation", "vital_interests",
         "public_task", "legitimate_interests")
CLASS_FIELDS = ("keep_days", "basis", "reason", "source")


class RetentionPolicyError(ValueError):
    """The retention policy cannot be used as written."""


@dataclass(frozen=True)
class ClassRetention:
    """How long one data class is kept, and on what grounds."""

    data_class: DataClass
    keep_days: int
    basis: str  # one of BASES: the short name an audit entry carries
    reason: str
    source: str

    @property
    def keep_ms(self) -> int:
        return self.keep_days * DAY_MS

    def cutoff_ms(self, now_ms: int) -> int:
        """Data of this class that ended before this time is due."""
        return now_ms - self.keep_ms

    def expires_at_ms(self, stored_at_ms: int) -> int:
        """When data stored at `stored_at_ms` is due for deletion."""
        return stored_at_ms + self.keep_ms


@dataclass(frozen=True)
class RetentionPolicy:
    effective: date
    reviewed_by: str
    classes: Mapping[DataClass, ClassRetention]

    def of(self, data_class: DataClass) -> ClassRetention:
        return self.classes[data_class]


def text_field(raw: Mapping[str, Any], name: str, where: str,
               hint: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip():
        key = f"{where}.{name}" if where else name
        raise RetentionPolicyError(f"{key}: missing: {hint}")
    return value.strip()


def parse_class(data_class: DataClass, raw: Any) -> ClassRetention:
    where = data_class.value
    if not isinstance(raw, Mapping):
        raise RetentionPolicyError(f"{where}: expected a table")
    unknown = sorted(set(raw) - set(CLASS_FIELDS))
    if unknown:
        raise RetentionPolicyError(
            f"{where}.{unknown[0]}: unknown key (expected "
            f"{', '.join(CLASS_FIELDS)})")
    days = raw.get("keep_days")
    # TOML's true is a Python int: refuse it by type, not by value.
    if type(days) is not int or days <= 0:
        raise RetentionPolicyError(
            f"{where}.keep_days: expected a positive whole number of "
            f"days, got {days!r}")
    basis = text_field(raw, "basis", where,
                       f"name the lawful basis ({', '.join(BASES)})")
    if basis not in BASES:
        raise RetentionPolicyError(
            f"{where}.basis: {basis!r} is not a lawful basis (expected "
            f"one of {', '.join(BASES)})")
    return ClassRetention(
        data_class, days, basis,
        text_field(raw, "reason", where, "say why this many days"),
        text_field(raw, "source", where,
                   "cite the rule, or say it is our choice"))


def parse_policy(raw: Mapping[str, Any]) -> RetentionPolicy:
    expected = {"effective", "reviewed_by", *DataClass}
    unknown = sorted(set(raw) - expected)
    if unknown:
        raise RetentionPolicyError(
            f"{unknown[0]}: not a data class (expected "
            f"{', '.join(DataClass)})")
    effective = raw.get("effective")
    if not isinstance(effective, date) or isinstance(effective, datetime):
        raise RetentionPolicyError(
            "effective: expected a date, like 2026-12-06, got "
            f"{effective!r}")
    reviewed_by = text_field(raw, "reviewed_by", "",
                             "who reviewed it, and when")
    missing = [c.value for c in DataClass if c not in raw]
    if missing:
        raise RetentionPolicyError(
            f"{', '.join(missing)}: missing; every data class needs a "
            "retention, or it would be kept forever")
    return RetentionPolicy(
        effective, reviewed_by,
        {c: parse_class(c, raw[c.value]) for c in DataClass})


def load_policy(path: Path = DEFAULT_POLICY) -> RetentionPolicy:
    try:
        with path.open("rb") as file:
            return parse_policy(tomllib.load(file))
    except OSError as error:
        raise RetentionPolicyError(f"{path}: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, RetentionPolicyError) as error:
        raise RetentionPolicyError(f"{path}: {error}") from None
