"""Consent: explicit per purpose, withdrawable, audited, append-only.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from ch07_api import database
from ch10_compliance.audit_event import Action
from ch10_compliance.consent import (
    ConsentLedger,
    ConsentRecord,
    Purpose,
    consent_events,
)
from tests.ch10.store_fixtures import NOON, ListSink, ManualClock


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def ledger(database_url: str, clock: ManualClock,
           sink: ListSink) -> Iterator[ConsentLedger]:
    opened = ConsentLedger(database.open_engine(database_url), clock, sink)
    opened.create_schema()
    yield opened
    opened.engine.dispose()


def test_nothing_is_allowed_until_granted(ledger: ConsentLedger) -> None:
    for purpose in Purpose:
        assert not ledger.allowed("acme", "alice", purpose)
        assert not ledger.allowed_throughout("acme", "alice", purpose, 0)
    assert ledger.history("acme", "alice") == []


def test_a_grant_is_per_purpose_subject_and_owner(
    ledger: ConsentLedger,
) -> None:
    ledger.grant("acme", "alice", Purpose.RETENTION)
    assert ledger.allowed("acme", "alice", "retention")
    assert not ledger.allowed("acme", "alice", Purpose.MODEL_IMPROVEMENT)
    assert not ledger.allowed("acme", "bob", Purpose.RETENTION)
    assert not ledger.allowed("globex", "alice", Purpose.RETENTION)


def test_withdrawal_ends_consent_and_both_are_audited(
    ledger: ConsentLedger, clock: ManualClock, sink: ListSink,
) -> None:
    ledger.grant("acme", "alice", Purpose.RETENTION, source="api")
    clock.advance(1_000)
    ledger.withdraw("acme", "alice", Purpose.RETENTION,
                    source="operator:dana")
    assert not ledger.allowed("acme", "alice", Purpose.RETENTION)
    alice = ledger.refs("acme", "alice")  # never the id itself
    assert alice.startswith("subj_") and "alice" not in alice
    assert [(e.action, e.actor, e.owner, e.target, dict(e.details))
            for e in sink.events] == [
        (Action.CONSENT_GRANTED, "api", "acme", alice,
         {"purpose": "retention"}),
        (Action.CONSENT_WITHDRAWN, "operator:dana", "acme", alice,
         {"purpose": "retention"})]
    assert ledger.refs("acme", "bob") != alice
    assert ledger.refs("globex", "alice") != alice
    assert ledger.history("acme", "alice") == [
        ConsentRecord("acme", "alice", Purpose.RETENTION, True, NOON,
                      "api"),
        ConsentRecord("acme", "alice", Purpose.RETENTION, False,
                      NOON + 1_000, "operator:dana")]


def test_history_is_appended_never_rewritten(
    ledger: ConsentLedger, clock: ManualClock,
) -> None:
    for _ in range(2):
        ledger.grant("acme", "alice", Purpose.TRANSCRIPTION)
        clock.advance(1)
        ledger.withdraw("acme", "alice", Purpose.TRANSCRIPTION)
        clock.advance(1)
    history = ledger.history("acme", "alice")
    assert [r.granted for r in history] == [True, False, True, False]
    assert [r.at_ms for r in history] == [NOON, NOON + 1, NOON + 2,
                                          NOON + 3]
    with ledger.engine.connect() as connection:
        assert connection.scalar(
            select(func.count()).select_from(consent_events)) == 4


def test_consent_holds_throughout_a_stream_only_if_never_withdrawn(
    ledger: ConsentLedger, clock: ManualClock,
) -> None:
    ledger.grant("acme", "alice", Purpose.RETENTION)
    clock.advance(10_000)
    stream_start = clock.now_ms
    assert ledger.allowed_throughout("acme", "alice", Purpose.RETENTION,
                                     stream_start)
    clock.advance(5_000)
    ledger.withdraw("acme", "alice", Purpose.RETENTION)
    clock.advance(5_000)
    ledger.grant("acme", "alice", Purpose.RETENTION)
    # Granted again before the stream ends: the audio spoken during the
    # withdrawal is still not kept, so nothing of this stream is.
    assert ledger.allowed("acme", "alice", Purpose.RETENTION)
    assert not ledger.allowed_throughout(
        "acme", "alice", Purpose.RETENTION, stream_start)
    # A stream that starts after the new grant is covered.
    assert ledger.allowed_throughout("acme", "alice", Purpose.RETENTION,
                                     clock.now_ms + 1)


def test_a_withdrawal_at_the_streams_first_moment_counts(
    ledger: ConsentLedger, clock: ManualClock,
) -> None:
    ledger.grant("acme", "alice", Purpose.RETENTION)
    clock.advance(1)
    ledger.withdraw("acme", "alice", Purpose.RETENTION)
    ledger.grant("acme", "alice", Purpose.RETENTION)
    assert not ledger.allowed_throughout("acme", "alice",
                                         Purpose.RETENTION, clock.now_ms)


def test_withdraw_all_withdraws_only_what_was_granted_once(
    ledger: ConsentLedger, sink: ListSink,
) -> None:
    ledger.grant("acme", "alice", Purpose.TRANSCRIPTION)
    ledger.grant("acme", "alice", Purpose.RETENTION)
    ledger.grant("acme", "bob", Purpose.RETENTION)
    assert ledger.withdraw_all("acme", "alice", "system:erasure") == 2
    assert not any(ledger.allowed("acme", "alice", p) for p in Purpose)
    assert ledger.allowed("acme", "bob", Purpose.RETENTION)
    assert ledger.withdraw_all("acme", "alice", "system:erasure") == 0
    withdrawn = [e.details["purpose"] for e in sink.events
                 if e.action == Action.CONSENT_WITHDRAWN]
    assert sorted(withdrawn) == ["retention", "transcription"]


def test_without_a_sink_consent_is_still_recorded(
    database_url: str, clock: ManualClock,
) -> None:
    ledger = ConsentLedger(database.open_engine(database_url), clock)
    ledger.create_schema()
    ledger.grant("acme", "alice", Purpose.RETENTION)
    assert ledger.allowed("acme", "alice", Purpose.RETENTION)
    ledger.engine.dispose()


def test_bad_consent_requests_are_refused(
    ledger: ConsentLedger, sink: ListSink,
) -> None:
    with pytest.raises(ValueError, match="unknown purpose 'marketing'; "
                                         "one of transcription, "
                                         "retention, model_improvement"):
        ledger.grant("acme", "alice", "marketing")
    with pytest.raises(ValueError, match="unknown purpose"):
        ledger.allowed("acme", "alice", "marketing")
    with pytest.raises(ValueError, match="subject must be 1 to 200 "
                                         "characters, not 0"):
        ledger.grant("acme", "", Purpose.RETENTION)
    with pytest.raises(ValueError, match="owner must be 1 to 200 "
                                         "characters, not 201"):
        ledger.withdraw("a" * 201, "alice", Purpose.RETENTION)
    with pytest.raises(ValueError, match="source must be"):
        ledger.grant("acme", "alice", Purpose.RETENTION, source="")
    assert sink.events == []
    assert ledger.history("acme", "alice") == []
