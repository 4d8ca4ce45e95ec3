"""The ledger on SQLite and PostgreSQL: idempotent, exact, auditable."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from ch08_metering.database import database_url, open_engine
from ch08_metering.events import UsageEvent, usage_event
from ch08_metering.ledger import (
    Accepted,
    Duplicate,
    Ledger,
    LedgerBusyError,
    LedgerConflictError,
    LedgerSchemaError,
    insert_new,
    ledger_row,
)
from tests.ch08.delivery_harness import NOON, Ledgers, write_lock
from tests.ch08.ingest_harness import create_earlier_ledger


def event(stream: str, sequence: int, value: int = 1000,
          at: float = NOON, customer: str = "acme") -> UsageEvent:
    return usage_event(stream_id=stream, sequence=sequence,
                       customer=customer, source="test", meter="audio_ms",
                       value=value, features=("diarization",), at=at)


def test_new_events_are_accepted_and_retries_are_duplicates(
        ledger: Ledger) -> None:
    first = ledger.ingest([event("s", 1), event("s", 2)], now_ms=1_000)
    assert first == [Accepted("s-1", 1_000), Accepted("s-2", 1_000)]
    again = ledger.ingest([event("s", 2), event("s", 3)], now_ms=2_000)
    assert again == [Duplicate("s-2", 1_000), Accepted("s-3", 2_000)]
    assert ledger.totals() == {("acme", "audio_ms", ("diarization",)):
                               3000}


def test_a_repeat_within_one_batch_is_counted_once(
        ledger: Ledger) -> None:
    same = event("s", 1)
    outcomes = ledger.ingest([same, event("s", 2), same], now_ms=5)
    assert outcomes == [Accepted("s-1", 5), Accepted("s-2", 5),
                        Duplicate("s-1", 5)]
    assert sum(ledger.totals().values()) == 2000


def test_a_reused_id_with_other_content_is_rejected(
        ledger: Ledger) -> None:
    ledger.ingest([event("s", 1, value=1000)], now_ms=5)
    [outcome] = ledger.ingest([event("s", 1, value=9999)], now_ms=6)
    assert outcome.id == "s-1"
    assert not isinstance(outcome, Accepted | Duplicate)
    assert "different event" in outcome.reason
    assert sum(ledger.totals().values()) == 1000


def test_a_batch_taken_whole_is_written_whole_or_not_at_all(
        ledger: Ledger) -> None:
    """A reused id rolls back the batch's new events with it; a batch
    of new events and retries is written as it would be otherwise."""
    ledger.ingest([event("s", 1, value=1000)], now_ms=5)
    with pytest.raises(LedgerConflictError) as conflict:
        ledger.ingest([event("s", 2), event("s", 1, value=9999)],
                      now_ms=6, whole=True)
    assert [type(o).__name__ for o in conflict.value.outcomes] == [
        "Accepted", "Rejected"]
    assert ledger.event_count() == 1
    outcomes = ledger.ingest([event("s", 2), event("s", 1, value=1000)],
                             now_ms=7, whole=True)
    assert outcomes == [Accepted("s-2", 7), Duplicate("s-1", 5)]
    assert sum(ledger.totals().values()) == 2000


def test_the_same_id_from_another_source_is_another_event(
        ledger: Ledger) -> None:
    other = event("s", 1).model_copy(update={"source": "other"})
    outcomes = ledger.ingest([event("s", 1), other], now_ms=5)
    assert outcomes == [Accepted("s-1", 5), Accepted("s-1", 5)]
    assert sum(ledger.totals().values()) == 2000  # both were stored


def test_usage_is_summed_per_stream_within_the_period(
        ledger: Ledger) -> None:
    ledger.ingest([event("a", 1, 60_000), event("a", 2, 1_500),
                   event("b", 1, 700), event("c", 1, 5, at=NOON + 86_400),
                   event("d", 1, 9, customer="demo")], now_ms=1)
    start = round(NOON * 1000)
    usage = ledger.stream_usage("acme", start, start + 3_600_000)
    assert [(u.stream_id, u.value, u.events) for u in usage] == [
        ("a", 61_500, 2), ("b", 700, 1)]
    raw = ledger.events_of("acme", start, start + 3_600_000)
    assert [e.id for e in raw] == ["a-1", "a-2", "b-1"]
    assert raw[0].features == ("diarization",)


def test_a_failed_write_claims_nothing(
        ledger: Ledger) -> None:
    """The retry of a batch whose transaction failed is accepted."""
    batch = [event("s", 1), event("s", 2)]
    with pytest.raises(RuntimeError), ledger.engine.begin() as connection:
        insert_new(connection, [ledger_row(e, 1) for e in batch])
        raise RuntimeError("crash before commit")
    assert ledger.ingest(batch, now_ms=2) == [Accepted("s-1", 2),
                                              Accepted("s-2", 2)]


def test_a_locked_database_is_busy_and_loses_nothing(
        tmp_path: Path, ledgers: Ledgers) -> None:
    path = tmp_path / "l.sqlite3"
    ledger = ledgers.at(f"sqlite:///{path}", busy_timeout_s=0.2)
    ledger.ingest([event("s", 1)], now_ms=1)
    with write_lock(path), pytest.raises(LedgerBusyError):
        ledger.ingest([event("s", 2)], now_ms=2)
    assert ledger.ingest([event("s", 2)], now_ms=3) == [Accepted("s-2", 3)]
    assert sum(ledger.totals().values()) == 2000


def test_concurrent_writers_of_the_same_events_count_each_once(
        ledger: Ledger) -> None:
    batch = [event("s", n) for n in range(200)]
    outcomes: list[list[object]] = []

    def write() -> None:
        outcomes.append(list(ledger.ingest(batch, now_ms=1)))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    accepted = sum(isinstance(o, Accepted) for run in outcomes for o in run)
    assert len(outcomes) == 4
    assert accepted == 200
    assert sum(ledger.totals().values()) == 200 * 1000


def test_sqlite_runs_in_wal_mode_with_durable_commits(
        tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path}/l.sqlite3")
    with engine.connect() as connection:
        mode = connection.execute(text("PRAGMA journal_mode")).scalar()
        sync = connection.execute(text("PRAGMA synchronous")).scalar()
    engine.dispose()
    assert (mode, sync) == ("wal", 2)  # 2 is FULL


def test_postgres_urls_use_psycopg() -> None:
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url(None).startswith("sqlite:///")


def test_an_empty_batch_writes_nothing(ledger: Ledger) -> None:
    assert ledger.ingest([], now_ms=1) == []
    assert ledger.event_count() == 0


def test_ids_are_scoped_by_customer(ledger: Ledger) -> None:
    """The same (source, id) of two customers is two events; each is
    retried, and reused, within its own customer only."""
    acme, demo = event("s", 1, value=5), event("s", 1, customer="demo")
    assert ledger.ingest([acme, demo], now_ms=1) == [
        Accepted("s-1", 1), Accepted("s-1", 1)]
    changed = event("s", 1, value=6)
    again = ledger.ingest([demo, acme, changed], now_ms=2)
    assert again[:2] == [Duplicate("s-1", 1), Duplicate("s-1", 1)]
    assert not isinstance(again[2], Accepted | Duplicate)
    assert ledger.totals() == {
        ("acme", "audio_ms", ("diarization",)): 5,
        ("demo", "audio_ms", ("diarization",)): 1000}


def test_a_ledger_keyed_by_source_and_id_alone_is_refused(
        database_url: str, ledgers: Ledgers) -> None:
    """An earlier layout: every write to it would fail, so opening it
    fails instead, saying what to do."""
    create_earlier_ledger(database_url)
    with pytest.raises(LedgerSchemaError, match="start a new ledger"):
        ledgers.at(database_url)
