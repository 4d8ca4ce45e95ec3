"""Subject requests: the GDPR's calendar month, the CCPA's 45 days,
one extension within the law's bounds, and what is overdue.

Every test runs on SQLite and on PostgreSQL; time is a clock the test
sets, so each deadline is exact to the millisecond.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from ch07_api import database
from ch10_compliance.subject_requests import (
    DAY_MS,
    ExtensionRefusedError,
    Law,
    Period,
    RequestKind,
    SubjectRequests,
    UnknownRequestError,
)
from tests.databases import postgres_url  # noqa: F401 (a fixture)


def ms(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp()
               * 1000)


@dataclass
class ManualClock:
    now_ms: int = ms(2026, 1, 31, 10)

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def requests(database_url: str,
             clock: ManualClock) -> Iterator[SubjectRequests]:
    store = SubjectRequests(database.open_engine(database_url), clock)
    store.create_schema()
    yield store
    store.engine.dispose()


def test_gdpr_month_ends_on_the_last_day_of_a_shorter_month(
        requests: SubjectRequests, clock: ManualClock) -> None:
    opened = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    assert opened.received_at_ms == ms(2026, 1, 31, 10)
    assert opened.due_at_ms == ms(2026, 2, 28, 10)  # no 31 February

    clock.now_ms = ms(2028, 1, 31, 10)  # a leap year
    leap = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    assert leap.due_at_ms == ms(2028, 2, 29, 10)

    clock.now_ms = ms(2026, 3, 15, 10)  # a month, not 30 days
    march = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    assert march.due_at_ms == ms(2026, 4, 15, 10)


def test_gdpr_extension_gives_three_months_from_receipt(
        requests: SubjectRequests) -> None:
    opened = requests.open("acme", "alice", RequestKind.ERASURE, Law.GDPR)
    extended = requests.extend(opened.request_id, "3,000 recordings")
    assert extended.extended_due_at_ms == ms(2026, 4, 30, 10)
    assert extended.deadline_ms == ms(2026, 4, 30, 10)
    assert extended.extension_reason == "3,000 recordings"
    assert extended.due_at_ms == ms(2026, 2, 28, 10)  # kept, for evidence


def test_ccpa_gives_45_days_and_45_more(
        requests: SubjectRequests, clock: ManualClock) -> None:
    clock.now_ms = ms(2026, 1, 1, 9)
    opened = requests.open("acme", "bob", RequestKind.ERASURE, Law.CCPA)
    assert opened.due_at_ms == ms(2026, 2, 15, 9)
    extended = requests.extend(opened.request_id, "verifying identity")
    assert extended.extended_due_at_ms == ms(2026, 4, 1, 9)  # 90 days


def test_a_shorter_extension_is_allowed(
        requests: SubjectRequests) -> None:
    opened = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    until = ms(2026, 3, 20, 10)
    extended = requests.extend(opened.request_id, "backlog", until)
    assert extended.extended_due_at_ms == until


def test_extending_twice_is_refused(requests: SubjectRequests) -> None:
    opened = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    requests.extend(opened.request_id, "backlog", ms(2026, 3, 20, 10))
    with pytest.raises(ExtensionRefusedError,
                       match="GDPR allows one extension, and it was "
                       r"already extended to 2026-03-20T10:00:00Z \(backlog"):
        requests.extend(opened.request_id, "more backlog")
    assert requests.get(opened.request_id).extended_due_at_ms == ms(
        2026, 3, 20, 10)


def test_extending_beyond_the_law_is_refused(
        requests: SubjectRequests) -> None:
    opened = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    with pytest.raises(ExtensionRefusedError,
                       match="GDPR allows at most 2 months more, until "
                       "2026-04-30T10:00:00Z; asked until 2026-05-01"):
        requests.extend(opened.request_id, "backlog", ms(2026, 5, 1, 10))

    ccpa = requests.open("acme", "bob", RequestKind.ERASURE, Law.CCPA)
    with pytest.raises(ExtensionRefusedError,
                       match="CCPA allows at most 45 days more"):
        requests.extend(ccpa.request_id, "backlog",
                        ccpa.received_at_ms + 91 * DAY_MS)
    assert requests.get(ccpa.request_id).extended_due_at_ms is None


def test_an_extension_needs_a_reason(requests: SubjectRequests) -> None:
    opened = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    with pytest.raises(ExtensionRefusedError,
                       match=r"needs a reason: the subject must be told "
                       r"why \(GDPR Art. 12\(3\)\)"):
        requests.extend(opened.request_id, "  ")


def test_an_extension_after_the_first_period_is_refused(
        requests: SubjectRequests, clock: ManualClock) -> None:
    opened = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    clock.now_ms = opened.due_at_ms + 1
    with pytest.raises(ExtensionRefusedError,
                       match="told within the first 1 month, which ended "
                       "at 2026-02-28T10:00:00Z"):
        requests.extend(opened.request_id, "backlog")


def test_an_extension_must_move_the_deadline_later(
        requests: SubjectRequests) -> None:
    opened = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    with pytest.raises(ExtensionRefusedError, match="is not later than"):
        requests.extend(opened.request_id, "backlog", opened.due_at_ms)


def test_a_completed_request_is_neither_extended_nor_completed_again(
        requests: SubjectRequests, clock: ManualClock) -> None:
    opened = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    clock.now_ms += DAY_MS
    done = requests.complete(opened.request_id, '{"ok": true}')
    assert done.completed_at_ms == clock.now_ms
    assert done.receipt == '{"ok": true}'
    with pytest.raises(ExtensionRefusedError, match="it was completed at"):
        requests.extend(opened.request_id, "backlog")
    with pytest.raises(ValueError, match="already completed at "
                       "2026-02-01T10:00:00Z"):
        requests.complete(opened.request_id)


def test_overdue_lists_open_requests_past_their_deadline(
        requests: SubjectRequests, clock: ManualClock) -> None:
    late = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    answered = requests.open("acme", "bob", RequestKind.ACCESS, Law.GDPR)
    extended = requests.open("acme", "carol", RequestKind.ERASURE,
                             Law.GDPR)
    other_law = requests.open("globex", "dave", RequestKind.ERASURE,
                              Law.CCPA)  # due 17 March
    requests.complete(answered.request_id)
    requests.extend(extended.request_id, "backlog")
    assert requests.overdue(late.due_at_ms) == []  # due means by then

    clock.now_ms = late.due_at_ms + 1
    overdue = requests.overdue(clock.now_ms)
    assert [r.request_id for r in overdue] == [late.request_id]
    assert overdue[0].is_overdue(clock.now_ms)
    assert overdue[0].days_left(clock.now_ms) == -1

    april = ms(2026, 4, 1)
    assert [r.request_id for r in requests.overdue(april)] == [
        late.request_id, other_law.request_id]
    may = ms(2026, 5, 1)
    assert [r.request_id for r in requests.overdue(may)] == [
        late.request_id, other_law.request_id, extended.request_id]


def test_days_left_counts_whole_days(requests: SubjectRequests) -> None:
    opened = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    assert opened.days_left(opened.received_at_ms) == 28
    assert opened.days_left(opened.due_at_ms - 1) == 0
    assert not opened.is_overdue(opened.due_at_ms)


def test_for_subject_lists_only_that_subject_of_that_owner(
        requests: SubjectRequests, clock: ManualClock) -> None:
    first = requests.open("acme", "alice", RequestKind.ACCESS, Law.GDPR)
    clock.now_ms += 1
    second = requests.open("acme", "alice", RequestKind.ERASURE, Law.CCPA)
    requests.open("acme", "bob", RequestKind.ACCESS, Law.GDPR)
    requests.open("globex", "alice", RequestKind.ACCESS, Law.GDPR)
    listed = requests.for_subject("acme", "alice")
    assert [r.request_id for r in listed] == [first.request_id,
                                              second.request_id]
    assert listed[1].kind is RequestKind.ERASURE
    assert listed[1].law is Law.CCPA


def test_progress_is_kept_on_the_request(
        requests: SubjectRequests) -> None:
    opened = requests.open("acme", "alice", RequestKind.ERASURE, Law.GDPR)
    assert opened.progress == {}
    requests.save_progress(opened.request_id, {"regions": {"eu": 2}})
    assert requests.get(opened.request_id).progress == {
        "regions": {"eu": 2}}


def test_bad_requests_are_refused(requests: SubjectRequests) -> None:
    with pytest.raises(ValueError, match="needs an owner and a subject"):
        requests.open("acme", "", RequestKind.ACCESS, Law.GDPR)
    with pytest.raises(UnknownRequestError, match="no subject request "
                       "sr_missing"):
        requests.get("sr_missing")


def test_periods_read_as_the_law_writes_them() -> None:
    assert str(Period(months=1)) == "1 month"
    assert str(Period(months=2)) == "2 months"
    assert str(Period(days=45)) == "45 days"
    assert Period(months=1) + Period(months=2) == Period(months=3)
