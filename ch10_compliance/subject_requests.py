"""Data subject requests and the deadlines the law gives each one.

Chapter 10, "GDPR for voice data" and "CCPA implications for stored
audio and transcripts". A request to see (Art. 15), take away (Art. 20)
or erase (Art. 17) one's recordings starts a clock on the day it
arrives. The GDPR gives one calendar month (Art. 12(3)): 31 January
is due on 28 February, or the 29th in a leap year; the period may be
extended by two further months, once, if the subject is told why
within the first month. The CCPA gives 45 days, extendable once by 45
more with notice within the first 45 (Cal. Civ. Code 1798.130(a)(2)).
Each request is a row in the control database with its deadline, any
extension and its reason, when it was completed and its receipt, so
`overdue` can list what is late and the evidence report can show what
was answered in time. Times are integer Unix milliseconds (UTC).
"""

from __future__ import annotations

import calendar
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.engine import RowMapping

from ch09_security.key_store import reading
from ch09_security.keys_cli import when

DAY_MS = 86_400_000
EPOCH = date(1970, 1, 1)


class Law(StrEnum):
    GDPR = "gdpr"
    CCPA = "ccpa"  # as amended by the CPRA


class RequestKind(StrEnum):
    ACCESS = "access"  # GDPR Art. 15, CCPA right to know
    PORTABILITY = "portability"  # GDPR Art. 20
    ERASURE = "erasure"  # GDPR Art. 17, CCPA right to delete


metadata = MetaData()
subject_requests = Table(
    "subject_requests", metadata,
    Column("request_id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("law", String(8), nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),
    Column("due_at_ms", BigInteger, nullable=False),
    Column("extended_due_at_ms", BigInteger),
    Column("extension_reason", String(500)),
    Column("completed_at_ms", BigInteger),
    Column("receipt", Text),  # an erasure's signed receipt (JSON)
    # What a resumable request has done so far (JSON), so a rerun after
    # a crash reports the work of every attempt.
    Column("progress", Text, nullable=False, default="{}"),
    Index("subject_requests_by_subject", "owner", "subject"),
)


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or that month's last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month,
                min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Period:
    """Calendar months and days: a month is not 30 days."""

    months: int = 0
    days: int = 0

    def after(self, at_ms: int) -> int:
        day, time_of_day = divmod(at_ms, DAY_MS)
        start = EPOCH + timedelta(days=day)
        end = add_months(start, self.months) + timedelta(days=self.days)
        return (end - EPOCH).days * DAY_MS + time_of_day

    def __add__(self, other: Period) -> Period:
        return Period(self.months + other.months, self.days + other.days)

    def __str__(self) -> str:
        count, unit = (self.months, "month") if self.months else (
            self.days, "day")
        return f"{count} {unit}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Deadline:
    """How long a law gives, and how much longer it allows, once."""

    respond_within: Period
    extension: Period
    source: str


DEADLINES = {
    Law.GDPR: Deadline(Period(months=1), Period(months=2),
                       "GDPR Art. 12(3)"),
    Law.CCPA: Deadline(Period(days=45), Period(days=45),
                       "Cal. Civ. Code 1798.130(a)(2)"),
}


class UnknownRequestError(LookupError):
    """No request has this id."""


class ExtensionRefusedError(ValueError):
    """The law does not allow this extension."""


@dataclass(frozen=True)
class SubjectRequest:
    request_id: str
    owner: str
    subject: str
    kind: RequestKind
    law: Law
    received_at_ms: int
    due_at_ms: int
    extended_due_at_ms: int | None = None
    extension_reason: str | None = None
    completed_at_ms: int | None = None
    receipt: str | None = None
    progress: Mapping[str, Any] = field(default_factory=dict)

    @property
    def deadline_ms(self) -> int:
        return self.extended_due_at_ms or self.due_at_ms

    def is_overdue(self, now_ms: int) -> bool:
        return self.completed_at_ms is None and now_ms > self.deadline_ms

    def days_left(self, now_ms: int) -> int:
        """Whole days to the deadline; negative once it has passed."""
        return (self.deadline_ms - now_ms) // DAY_MS

    @classmethod
    def of_row(cls, row: RowMapping) -> SubjectRequest:
        values = dict(row)
        values["kind"] = RequestKind(values["kind"])
        values["law"] = Law(values["law"])
        values["progress"] = json.loads(values["progress"])
        return cls(**values)


@dataclass
class SubjectRequests:
    engine: Engine
    clock_ms: Callable[[], int]

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def open(self, owner: str, subject: str, kind: RequestKind,
             law: Law) -> SubjectRequest:
        if not owner or not subject:
            raise ValueError("a request needs an owner and a subject")
        now = self.clock_ms()
        row = {"request_id": "sr_" + secrets.token_hex(8),
               "owner": owner, "subject": subject, "kind": kind.value,
               "law": law.value, "received_at_ms": now,
               "due_at_ms": DEADLINES[law].respond_within.after(now),
               "progress": "{}"}
        with self.engine.begin() as connection:
            connection.execute(subject_requests.insert().values(row))
        return self.get(str(row["request_id"]))

    def get(self, request_id: str) -> SubjectRequest:
        query = select(subject_requests).where(
            subject_requests.c.request_id == request_id)
        with reading(self.engine) as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            raise UnknownRequestError(f"no subject request {request_id}")
        return SubjectRequest.of_row(row)

    def extend(self, request_id: str, reason: str,
               until_ms: int | None = None) -> SubjectRequest:
        """Move the deadline, once, by at most the law's extension
        (all of it unless `until_ms` says less)."""
        request = self.get(request_id)
        rule = DEADLINES[request.law]
        longest = (rule.respond_within + rule.extension).after(
            request.received_at_ms)
        until = longest if until_ms is None else until_ms
        refused = extension_refusal(request, reason.strip(), until,
                                    longest, self.clock_ms())
        if refused:
            raise ExtensionRefusedError(
                f"{request_id} cannot be extended: {refused}")
        self._change(request_id, extended_due_at_ms=until,
                     extension_reason=reason.strip())
        return self.get(request_id)

    def complete(self, request_id: str,
                 receipt: str | None = None) -> SubjectRequest:
        request = self.get(request_id)
        if request.completed_at_ms is not None:
            raise ValueError(f"{request_id} was already completed at "
                             f"{when(request.completed_at_ms)}")
        self._change(request_id, completed_at_ms=self.clock_ms(),
                     receipt=receipt)
        return self.get(request_id)

    def save_progress(self, request_id: str,
                      progress: Mapping[str, Any]) -> None:
        self._change(request_id,
                     progress=json.dumps(progress, sort_keys=True))

    def for_subject(self, owner: str,
                    subject: str) -> list[SubjectRequest]:
        query = select(subject_requests).where(
            subject_requests.c.owner == owner,
            subject_requests.c.subject == subject,
        ).order_by(subject_requests.c.received_at_ms,
                   subject_requests.c.request_id)
        return self._many(query)

    def overdue(self, now_ms: int) -> list[SubjectRequest]:
        """Open requests whose deadline (extended, if it was) passed."""
        deadline = func.coalesce(subject_requests.c.extended_due_at_ms,
                                 subject_requests.c.due_at_ms)
        query = select(subject_requests).where(
            subject_requests.c.completed_at_ms.is_(None),
            deadline < now_ms,
        ).order_by(deadline, subject_requests.c.request_id)
        return self._many(query)

    def _many(self, query: Any) -> list[SubjectRequest]:
        with reading(self.engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [SubjectRequest.of_row(row) for row in rows]

    def _change(self, request_id: str, **values: object) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(subject_requests)
                .where(subject_requests.c.request_id == request_id)
                .values(**values))


def extension_refusal(request: SubjectRequest, reason: str, until_ms: int,
                      longest_ms: int, now_ms: int) -> str:
    """Why the law refuses this extension, or "" if it allows it."""
    rule = DEADLINES[request.law]
    law = request.law.upper()
    if request.completed_at_ms is not None:
        return f"it was completed at {when(request.completed_at_ms)}"
    if request.extended_due_at_ms is not None:
        return (f"{law} allows one extension, and it was already "
                f"extended to {when(request.extended_due_at_ms)} "
                f"({request.extension_reason})")
    if not reason:
        return (f"an extension needs a reason: the subject must be "
                f"told why ({rule.source})")
    if now_ms > request.due_at_ms:
        return (f"{law} requires the subject to be told within the "
                f"first {rule.respond_within}, which ended at "
                f"{when(request.due_at_ms)}")
    if until_ms > longest_ms:
        return (f"{law} allows at most {rule.extension} more, until "
                f"{when(longest_ms)}; asked until {when(until_ms)}")
    if until_ms <= request.due_at_ms:
        return (f"{when(until_ms)} is not later than the deadline "
                f"{when(request.due_at_ms)}")
    return ""
