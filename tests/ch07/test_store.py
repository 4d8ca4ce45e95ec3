"""The store of transcripts and operations, on SQLite and PostgreSQL.

Proves what the routes rely on: records come back as written, lists are
in creation order from any position, a finished operation never changes
again, what was running at a crash is marked ABORTED at the next start,
and the signing key is made once and then kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ch04_streaming.transcript import Word
from ch07_api.database import open_engine
from ch07_api.errors import ConflictError
from ch07_api.operations import INTERRUPTED
from ch07_api.store import OperationState, Store
from ch07_api.transcriber import Segment, Transcript
from tests.databases import postgres_url  # noqa: F401 (a fixture)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path
          ) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    engine = open_engine(url)
    made = Store(engine, Clock())
    made.create_schema()
    yield made
    engine.dispose()


TRANSCRIPT = Transcript(3.0, (
    Segment(0, 0.5, 1.0, (Word("hello", 0.5, 0.8, 0.9),
                          Word("there", 0.8, 1.0, 0.8))),
    Segment(1, 2.0, 2.4, (Word("bye", 2.0, 2.4, 1.0),))))


def test_a_transcript_comes_back_as_written(store: Store) -> None:
    written = store.add_transcript("t-1", "mock-asr-2026-01", "en",
                                   TRANSCRIPT)
    read = store.transcript("t-1")
    assert read == written
    assert read is not None and read.transcript == TRANSCRIPT
    assert read.create_time.tzinfo is not None
    assert store.transcript("nope") is None
    with pytest.raises(ConflictError):
        store.add_transcript("t-1", "m", "en", TRANSCRIPT)


def test_lists_run_in_creation_order_from_any_position(
        store: Store) -> None:
    for number in range(5):
        store.add_transcript(f"t-{number}", "m", "en", TRANSCRIPT)
    everything = store.list_transcripts(0, 10)
    assert [t.id for t in everything] == [f"t-{n}" for n in range(5)]
    after_two = store.list_transcripts(everything[1].seq, 2)
    assert [t.id for t in after_two] == ["t-2", "t-3"]


def test_an_operation_ends_once(store: Store) -> None:
    started = store.add_operation("m", "v1", 44.0, "t-9")
    assert started.state is OperationState.RUNNING and not started.done
    store.record_progress(started.id, 11.0)
    running = store.operation(started.id)
    assert running is not None and running.processed_audio_s == 11.0
    assert running.update_time > started.update_time
    store.finish(started.id, 44.0)
    store.fail(started.id, OperationState.CANCELLED, {"code": 1})
    store.record_progress(started.id, 1.0)
    done = store.operation(started.id)
    assert done is not None
    assert done.state is OperationState.SUCCEEDED and done.error is None
    assert done.processed_audio_s == 44.0
    assert store.delete_operation(started.id)
    assert store.operation(started.id) is None
    assert not store.delete_operation(started.id)


def test_what_a_dead_process_ran_is_marked_aborted(store: Store) -> None:
    running = store.add_operation("m", "v1", 44.0, "t-1")
    finished = store.add_operation("m", "v1", 44.0, "t-2")
    store.finish(finished.id, 44.0)
    assert store.abandon_running(INTERRUPTED) == 1
    aborted = store.operation(running.id)
    assert aborted is not None and aborted.state is OperationState.FAILED
    assert aborted.error == INTERRUPTED and aborted.error["code"] == 10
    kept = store.operation(finished.id)
    assert kept is not None and kept.state is OperationState.SUCCEEDED
    assert store.abandon_running(INTERRUPTED) == 0


def test_the_signing_key_is_made_once(store: Store) -> None:
    first = store.secret("page_tokens")
    assert len(first) == 32
    assert store.secret("page_tokens") == first
    assert store.secret("other") != first
