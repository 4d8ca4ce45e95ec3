"""Processing records: which streams were about which subject.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ch07_api import database
from ch10_compliance.processing import (
    ProcessingRecords,
    StreamClaimedError,
    StreamRecord,
)
from tests.ch10.store_fixtures import NOON, ManualClock


@pytest.fixture
def records(database_url: str,
            clock: ManualClock) -> Iterator[ProcessingRecords]:
    opened = ProcessingRecords(database.open_engine(database_url), clock)
    opened.create_schema()
    yield opened
    opened.engine.dispose()


def test_streams_are_recorded_per_subject_in_order(
    records: ProcessingRecords, clock: ManualClock,
) -> None:
    records.record("acme", "alice", "st_2", "eu")
    clock.advance(1_000)
    records.record("acme", "alice", "st_1", "us")
    records.record("acme", "bob", "st_3", "eu")
    assert records.streams("acme", "alice") == [
        StreamRecord("acme", "alice", "st_2", "eu", NOON),
        StreamRecord("acme", "alice", "st_1", "us", NOON + 1_000)]
    assert records.known("acme", "alice")
    assert not records.known("globex", "alice")
    assert records.streams("globex", "alice") == []


def test_recording_a_stream_again_changes_nothing(
    records: ProcessingRecords, clock: ManualClock,
) -> None:
    records.record("acme", "alice", "st_1", "eu")
    clock.advance(1_000)
    records.record("acme", "alice", "st_1", "eu")
    assert records.streams("acme", "alice") == [
        StreamRecord("acme", "alice", "st_1", "eu", NOON)]


def test_a_stream_cannot_be_claimed_for_someone_else(
    records: ProcessingRecords,
) -> None:
    records.record("acme", "alice", "st_1", "eu")
    for owner, subject, region in [("acme", "bob", "eu"),
                                   ("globex", "alice", "eu"),
                                   ("acme", "alice", "us")]:
        with pytest.raises(StreamClaimedError,
                           match="stream st_1 is already recorded"):
            records.record(owner, subject, "st_1", region)
    assert records.streams("acme", "bob") == []


def test_forgetting_a_subject_cuts_only_their_records(
    records: ProcessingRecords,
) -> None:
    records.record("acme", "alice", "st_1", "eu")
    records.record("acme", "alice", "st_2", "eu")
    records.record("acme", "bob", "st_3", "eu")
    assert records.forget("acme", "alice") == 2
    assert not records.known("acme", "alice")
    assert records.known("acme", "bob")
    assert records.forget("acme", "alice") == 0


def test_incomplete_records_are_refused(
    records: ProcessingRecords,
) -> None:
    with pytest.raises(ValueError, match="owner, subject, stream_id and "
                                         "region are required"):
        records.record("acme", "", "st_1", "eu")
    assert not records.known("acme", "")
