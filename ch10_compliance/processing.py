"""Which streams were about which subject: the record of processing.

Chapter 10, "GDPR for voice data" and "CCPA implications for stored
audio and transcripts". A stream id is the only thread from a subject
to what the service did with their voice: the usage events billed for
it (chapter 8) and the objects kept from it. Access and portability
requests follow that thread; erasure cuts it (`forget`), after which
the usage events an invoice still needs (Art. 17(3)(b)) no longer link
to anyone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    delete,
    select,
)
from sqlalchemy.exc import IntegrityError

from ch09_security.key_store import reading

metadata = MetaData()
subject_streams = Table(
    "subject_streams", metadata,
    Column("stream_id", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("region", String(32), nullable=False),
    Column("started_at_ms", BigInteger, nullable=False),
    Index("subject_streams_by_subject", "owner", "subject",
          "started_at_ms"),
)


class StreamClaimedError(ValueError):
    """A stream already recorded for another owner or subject."""


@dataclass(frozen=True)
class StreamRecord:
    owner: str
    subject: str
    stream_id: str
    region: str
    started_at_ms: int


@dataclass
class ProcessingRecords:
    engine: Engine
    clock_ms: Callable[[], int]

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def record(self, owner: str, subject: str, stream_id: str,
               region: str) -> None:
        """Note that this stream is about this subject; recording the
        same again changes nothing."""
        if not (owner and subject and stream_id and region):
            raise ValueError(
                "owner, subject, stream_id and region are required")
        try:
            with self.engine.begin() as connection:
                connection.execute(subject_streams.insert().values(
                    owner=owner, subject=subject, stream_id=stream_id,
                    region=region, started_at_ms=self.clock_ms()))
        except IntegrityError:
            pass  # already recorded: checked below
        known = self._one(stream_id)
        if (known.owner, known.subject, known.region) != (owner, subject,
                                                          region):
            raise StreamClaimedError(
                f"stream {stream_id} is already recorded for another "
                "owner, subject or region")

    def streams(self, owner: str, subject: str) -> list[StreamRecord]:
        s = subject_streams.c
        with reading(self.engine) as connection:
            rows = connection.execute(
                select(subject_streams)
                .where(s.owner == owner, s.subject == subject)
                .order_by(s.started_at_ms, s.stream_id)).mappings().all()
        return [StreamRecord(**row) for row in rows]

    def forget(self, owner: str, subject: str) -> int:
        """Delete the subject's records: how many there were."""
        s = subject_streams.c
        with self.engine.begin() as connection:
            done = connection.execute(delete(subject_streams).where(
                s.owner == owner, s.subject == subject))
        return done.rowcount

    def known(self, owner: str, subject: str) -> bool:
        s = subject_streams.c
        with reading(self.engine) as connection:
            found = connection.scalar(select(s.stream_id).where(
                s.owner == owner, s.subject == subject).limit(1))
        return found is not None

    def _one(self, stream_id: str) -> StreamRecord:
        with reading(self.engine) as connection:
            row = connection.execute(select(subject_streams).where(
                subject_streams.c.stream_id == stream_id)).mappings().one()
        return StreamRecord(**row)
