"""Consent per subject and purpose: explicit, withdrawable, on record.

Chapter 10, "GDPR for voice data". A voice is personal data (biometric
when it is used to identify someone), and keeping a recording needs a
lawful basis: here, the subject's explicit consent, given per purpose
(transcription, keeping the recording, improving models). Nothing is
assumed: a subject nobody asked about has consented to nothing.
Consent is as easy to withdraw as to give (Art. 7(3)), and the
controller must be able to show it was given (Art. 7(1)), so every
grant and withdrawal is appended to a history that is never edited,
and audited. A withdrawal during a stream means nothing of that stream
is kept, even if consent is given again before it ends: the audio was
spoken under a withdrawal, and a later grant cannot reach back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    false,
    select,
)

from ch09_security.key_store import reading
from ch10_compliance.audit_event import Action, AuditEvent, AuditSink

MAX_NAME = 200


class Purpose(StrEnum):
    TRANSCRIPTION = "transcription"  # process the audio, keep nothing
    RETENTION = "retention"  # keep the recording and its transcripts
    MODEL_IMPROVEMENT = "model_improvement"  # train or evaluate on it


metadata = MetaData()
consent_events = Table(
    "consent_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(MAX_NAME), nullable=False),
    Column("subject", String(MAX_NAME), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("granted", Boolean, nullable=False),  # false: withdrawn
    Column("at_ms", BigInteger, nullable=False),
    Column("source", String(MAX_NAME), nullable=False),  # api, operator
    Index("consent_events_by_subject", "owner", "subject", "purpose",
          "id"),
)


@dataclass(frozen=True)
class ConsentRecord:
    """One grant or withdrawal, as it was recorded."""

    owner: str
    subject: str
    purpose: Purpose
    granted: bool
    at_ms: int
    source: str


def purpose_of(value: str) -> Purpose:
    try:
        return Purpose(value)
    except ValueError:
        raise ValueError(
            f"unknown purpose {value!r}; one of "
            f"{', '.join(Purpose)}") from None


def checked_name(field: str, value: str) -> str:
    if not value or len(value) > MAX_NAME:
        raise ValueError(
            f"{field} must be 1 to {MAX_NAME} characters, not "
            f"{len(value)}")
    return value


@dataclass
class ConsentLedger:
    engine: Engine
    clock_ms: Callable[[], int]
    sink: AuditSink | None = None

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def grant(self, owner: str, subject: str, purpose: str,
              source: str = "api") -> None:
        self._append(owner, subject, purpose_of(purpose), True, source)

    def withdraw(self, owner: str, subject: str, purpose: str,
                 source: str = "api") -> None:
        self._append(owner, subject, purpose_of(purpose), False, source)

    def withdraw_all(self, owner: str, subject: str, source: str) -> int:
        """Withdraw every purpose now granted: how many were."""
        granted = [p for p in Purpose if self.allowed(owner, subject, p)]
        for purpose in granted:
            self._append(owner, subject, purpose, False, source)
        return len(granted)

    def allowed(self, owner: str, subject: str, purpose: str) -> bool:
        """Granted, and not withdrawn since: never by default."""
        c = consent_events.c
        with reading(self.engine) as connection:
            latest = connection.scalar(
                select(c.granted)
                .where(c.owner == owner, c.subject == subject,
                       c.purpose == purpose_of(purpose))
                .order_by(c.id.desc()).limit(1))
        return bool(latest)

    def allowed_throughout(self, owner: str, subject: str, purpose: str,
                           since_ms: int) -> bool:
        """Granted now, and never withdrawn at or after `since_ms` (a
        stream's start): a withdrawal mid-stream is not undone by a
        grant before its end."""
        c = consent_events.c
        with reading(self.engine) as connection:
            withdrawn = connection.scalar(
                select(c.id)
                .where(c.owner == owner, c.subject == subject,
                       c.purpose == purpose_of(purpose),
                       c.granted == false(), c.at_ms >= since_ms)
                .limit(1))
        return withdrawn is None and self.allowed(owner, subject, purpose)

    def history(self, owner: str, subject: str) -> list[ConsentRecord]:
        """Every grant and withdrawal, oldest first."""
        c = consent_events.c
        with reading(self.engine) as connection:
            rows = connection.execute(
                select(consent_events)
                .where(c.owner == owner, c.subject == subject)
                .order_by(c.id)).mappings().all()
        return [ConsentRecord(
            owner=row["owner"], subject=row["subject"],
            purpose=Purpose(row["purpose"]), granted=bool(row["granted"]),
            at_ms=row["at_ms"], source=row["source"]) for row in rows]

    def _append(self, owner: str, subject: str, purpose: Purpose,
                granted: bool, source: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(consent_events.insert().values(
                owner=checked_name("owner", owner),
                subject=checked_name("subject", subject),
                purpose=purpose, granted=granted,
                at_ms=self.clock_ms(),
                source=checked_name("source", source)))
        # Audited after the commit: the audit log may share this
        # database, and SQLite lets one transaction write at a time.
        if self.sink is not None:
            self.sink.record(AuditEvent(
                action=(Action.CONSENT_GRANTED if granted
                        else Action.CONSENT_WITHDRAWN),
                actor=source, owner=owner, target=subject,
                details={"purpose": str(purpose)}))
