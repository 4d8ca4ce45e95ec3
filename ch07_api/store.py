"""Transcripts and operations, kept in a database (SQLite by default).

Chapter 7, "Long-running operations". A finished transcript is a
resource with a name (`transcripts/{id}`), listed in a stable order;
an operation records work in progress: its state, its progress, and
when it ends, its transcript or its error. Both are rows, so a restart
loses no finished work; and an operation still running when the
process died is marked failed (ABORTED) at the next start, not left
"running" for ever. Calls are blocking (SQLAlchemy Core); the routes
run them in a thread, off the event loop.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ch04_streaming.transcript import Word
from ch07_api.errors import ConflictError
from ch07_api.transcriber import Segment, Transcript

metadata = MetaData()
transcripts = Table(
    "transcripts", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("model", String(64), nullable=False),
    Column("language", String(16), nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("segments", Text, nullable=False))  # JSON
operations = Table(
    "operations", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("done", Boolean, nullable=False),
    Column("model", String(64), nullable=False),
    Column("api_version", String(8), nullable=False),
    Column("total_audio_s", Float, nullable=False),
    Column("processed_audio_s", Float, nullable=False),
    Column("transcript_id", String(64)),
    Column("error", Text))  # google.rpc.Status JSON
secret_keys = Table(
    "secret_keys", metadata,
    Column("name", String(32), primary_key=True),
    Column("value", LargeBinary, nullable=False))


class OperationState(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class TranscriptRecord:
    id: str
    seq: int
    create_time: datetime
    model: str
    language: str
    transcript: Transcript


@dataclass(frozen=True)
class OperationRecord:
    id: str
    seq: int
    create_time: datetime
    update_time: datetime
    state: OperationState
    model: str
    api_version: str
    total_audio_s: float
    processed_audio_s: float
    transcript_id: str | None
    error: dict[str, Any] | None

    @property
    def done(self) -> bool:
        return self.state is not OperationState.RUNNING


def new_id() -> str:
    return secrets.token_hex(8)


def utc_now() -> datetime:
    return datetime.now(UTC)


def segments_json(transcript: Transcript) -> str:
    return json.dumps([
        [s.id, [[w.text, w.start, w.end, w.confidence] for w in s.words]]
        for s in transcript.segments])


def transcript_of(duration_s: float, text: str) -> Transcript:
    segments = tuple(
        Segment(index, words[0][1], words[-1][2],
                tuple(Word(*w) for w in words))
        for index, words in json.loads(text))
    return Transcript(duration_s, segments)


def aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; every time here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Store:
    engine: Engine
    clock: Callable[[], datetime] = utc_now

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def secret(self, name: str) -> bytes:
        """A random key kept in the database: made once, then reused,
        so what it signs stays valid across restarts."""
        with self.engine.begin() as db:
            row = db.execute(select(secret_keys.c.value).where(
                secret_keys.c.name == name)).first()
            if row is not None:
                value: bytes = row.value
                return value
            value = secrets.token_bytes(32)
            db.execute(insert(secret_keys).values(name=name, value=value))
            return value

    def add_transcript(self, transcript_id: str, model: str,
                       language: str, transcript: Transcript
                       ) -> TranscriptRecord:
        try:
            with self.engine.begin() as db:
                db.execute(insert(transcripts).values(
                    id=transcript_id, create_time=self.clock(),
                    model=model, language=language,
                    duration_s=transcript.duration_s,
                    segments=segments_json(transcript)))
        except IntegrityError:
            raise ConflictError(
                f"transcripts/{transcript_id} exists already",
                "transcript_id") from None
        record = self.transcript(transcript_id)
        assert record is not None
        return record

    def transcript(self, transcript_id: str) -> TranscriptRecord | None:
        with self.engine.connect() as db:
            row = db.execute(select(transcripts).where(
                transcripts.c.id == transcript_id)).first()
        return None if row is None else transcript_record(row)

    def transcript_exists(self, transcript_id: str) -> bool:
        return self.transcript(transcript_id) is not None

    def list_transcripts(self, after: int, limit: int
                         ) -> list[TranscriptRecord]:
        with self.engine.connect() as db:
            rows = db.execute(select(transcripts).where(
                transcripts.c.seq > after).order_by(
                transcripts.c.seq).limit(limit)).all()
        return [transcript_record(row) for row in rows]

    def add_operation(self, model: str, api_version: str,
                      total_audio_s: float, transcript_id: str
                      ) -> OperationRecord:
        operation_id, now = new_id(), self.clock()
        with self.engine.begin() as db:
            db.execute(insert(operations).values(
                id=operation_id, create_time=now, update_time=now,
                state=OperationState.RUNNING.value, done=False,
                model=model, api_version=api_version,
                total_audio_s=total_audio_s, processed_audio_s=0.0,
                transcript_id=transcript_id))
        record = self.operation(operation_id)
        assert record is not None
        return record

    def operation(self, operation_id: str) -> OperationRecord | None:
        with self.engine.connect() as db:
            row = db.execute(select(operations).where(
                operations.c.id == operation_id)).first()
        return None if row is None else operation_record(row)

    def list_operations(self, after: int, limit: int
                        ) -> list[OperationRecord]:
        with self.engine.connect() as db:
            rows = db.execute(select(operations).where(
                operations.c.seq > after).order_by(
                operations.c.seq).limit(limit)).all()
        return [operation_record(row) for row in rows]

    def record_progress(self, operation_id: str,
                        processed_audio_s: float) -> None:
        self._update(operation_id, running_only=True,
                     processed_audio_s=processed_audio_s)

    def finish(self, operation_id: str, processed_audio_s: float) -> None:
        self._update(operation_id, running_only=True,
                     state=OperationState.SUCCEEDED.value, done=True,
                     processed_audio_s=processed_audio_s)

    def fail(self, operation_id: str, state: OperationState,
             error: dict[str, Any]) -> None:
        self._update(operation_id, running_only=True, state=state.value,
                     done=True, error=json.dumps(error))

    def delete_operation(self, operation_id: str) -> bool:
        with self.engine.begin() as db:
            deleted = db.execute(operations.delete().where(
                operations.c.id == operation_id)).rowcount
        return bool(deleted)

    def abandon_running(self, error: dict[str, Any]) -> int:
        """Mark every operation still RUNNING as failed with `error`:
        at start-up, those are the ones a dead process was running."""
        with self.engine.begin() as db:
            changed = db.execute(update(operations).where(
                operations.c.done.is_(False)).values(
                state=OperationState.FAILED.value, done=True,
                error=json.dumps(error), update_time=self.clock())
            ).rowcount
        return int(changed)

    def _update(self, operation_id: str, running_only: bool,
                **values: Any) -> None:
        query = update(operations).where(operations.c.id == operation_id)
        if running_only:  # a finished operation never changes again
            query = query.where(operations.c.done.is_(False))
        with self.engine.begin() as db:
            db.execute(query.values(update_time=self.clock(), **values))


def transcript_record(row: Any) -> TranscriptRecord:
    return TranscriptRecord(
        id=row.id, seq=row.seq, create_time=aware(row.create_time),
        model=row.model, language=row.language,
        transcript=transcript_of(row.duration_s, row.segments))


def operation_record(row: Any) -> OperationRecord:
    return OperationRecord(
        id=row.id, seq=row.seq, create_time=aware(row.create_time),
        update_time=aware(row.update_time),
        state=OperationState(row.state), model=row.model,
        api_version=row.api_version, total_audio_s=row.total_audio_s,
        processed_audio_s=row.processed_audio_s,
        transcript_id=row.transcript_id,
        error=json.loads(row.error) if row.error else None)


