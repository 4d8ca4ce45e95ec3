"""The retention job: delete what the schedule says is due, and say so.

Chapter 10, "Data retention and deletion policies for audio data". The
job applies `retention.toml` to every store: audio and transcripts past
the expiry they were stored with, in every region (their rows, then the
keys of every day that has fully passed); chapter 8's usage events once
older than the cutoff *and* counted by a roll-up, so no invoice loses a
line it has not billed yet; chapter 9's records of keys that ended
before the cutoff; and the contents of audit entries older than the
audit class's days. A deletion commits with a journal row in its own
database, and the audit entry is written from the journal afterwards:
a job killed between the two finds the journal on its next run and
audits each deletion once. A dry run counts and explains, and changes
nothing. Each run is recorded in `retention_runs`, the evidence that
the schedule is applied.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

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
    Text,
    and_,
    delete,
    false,
    func,
    inspect,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

from ch08_metering.schema import IDENTITY, usage_events
from ch09_security.key_store import api_keys, reading
from ch10_compliance.audit_event import Action, AuditEvent, AuditSink
from ch10_compliance.data_classes import DataClass
from ch10_compliance.regional_store import STORED_CLASSES, RegionalStore
from ch10_compliance.retention_policy import ClassRetention, RetentionPolicy

ACTOR = "system:retention"
REASON = "retention"  # the regional journal's reason for our deletions
CONTROL = "control"  # the store names of the classes that are not
LEDGER = "ledger"  # kept per region
NO_LEDGER = "no usage store configured (--ledger-url or LEDGER_URL)"

metadata = MetaData()
retention_runs = Table(
    "retention_runs", metadata,
    Column("run_id", BigInteger().with_variant(Integer, "sqlite"),
           primary_key=True, autoincrement=True),
    Column("started_at_ms", BigInteger, nullable=False),
    Column("finished_at_ms", BigInteger),  # null: running, or killed
    Column("policy_effective", String(10), nullable=False),
    Column("outcome", String(200), nullable=False),
    Column("counts", Text, nullable=False),  # JSON: class -> deleted
    Column("keys_destroyed", Integer, nullable=False),
    Index("retention_runs_by_start", "started_at_ms"),
)
# Deletions of rows outside the regional stores, one row per batch,
# written in the batch's transaction in the database it deleted from.
retention_journal = Table(
    "retention_journal", metadata,
    Column("batch_id", String(40), primary_key=True),
    Column("data_class", String(16), nullable=False),
    Column("store", String(32), nullable=False),
    Column("rows_deleted", Integer, nullable=False),
    Column("cutoff_ms", BigInteger, nullable=False),
    Column("basis", String(32), nullable=False),
    Column("deleted_at_ms", BigInteger, nullable=False),
    Column("audited", Boolean, nullable=False),
    Index("retention_journal_unaudited", "audited", "data_class"),
)


class PrunableLog(Protocol):
    """An audit log whose old entries' contents can be removed."""

    def prune_before(self, at_ms: int) -> int: ...


class PolicyNotInEffectError(ValueError):
    """The policy's effective date is still to come."""


@dataclass(frozen=True)
class Due:
    """What the policy says must go from one store, and why."""

    data_class: DataClass
    store: str  # a region, or CONTROL, or LEDGER
    count: int | None  # None: the store cannot count before it deletes
    cutoff_ms: int
    basis: str
    why: str


@dataclass(frozen=True)
class Deleted:
    """One audited deletion: what went, from where, under what basis."""

    data_class: DataClass
    store: str
    owner: str  # "" when the deletion spans owners
    count: int
    cutoff_ms: int
    basis: str

    def event(self) -> AuditEvent:
        return AuditEvent(
            Action.DATA_DELETED, ACTOR, owner=self.owner, reason=REASON,
            details={"data_class": self.data_class.value,
                     "count": self.count, "region": self.store,
                     "cutoff_ms": self.cutoff_ms, "basis": self.basis})


@dataclass(frozen=True)
class RetentionRun:
    """One run of the job, as the evidence report shows it."""

    run_id: int  # in the order runs started
    started_at_ms: int
    finished_at_ms: int | None
    policy_effective: str
    outcome: str  # running (or killed), completed, failed: ErrorType
    counts: Mapping[str, int]  # data class -> rows or objects deleted
    keys_destroyed: int


@dataclass(frozen=True)
class RetentionReport:
    now_ms: int
    dry_run: bool
    due: tuple[Due, ...]  # the plan, for a dry run
    deleted: tuple[Deleted, ...]  # audited, for a run
    keys_destroyed: int = 0
    run: RetentionRun | None = None

    def count(self, data_class: DataClass) -> int:
        return sum(d.count for d in self.deleted
                   if d.data_class == data_class)


@dataclass(frozen=True)
class KeptRows:
    """A data class kept as rows of one table, and when a row is due."""

    data_class: DataClass
    store: str
    table: Table
    key: tuple[str, ...]
    due: Callable[[int], ColumnElement[bool]]  # cutoff_ms -> condition


def usage_due(cutoff_ms: int) -> ColumnElement[bool]:
    # An event not yet rolled up has not reached an invoice: kept.
    u = usage_events.c
    return and_(u.rollup_id.is_not(None), u.event_time_ms < cutoff_ms)


def key_due(cutoff_ms: int) -> ColumnElement[bool]:
    # A key ends at the first of its revocation and its expiry.
    k = api_keys.c
    return or_(k.revoked_at_ms < cutoff_ms, k.expires_at_ms < cutoff_ms)


USAGE_ROWS = KeptRows(DataClass.USAGE, LEDGER, usage_events,
                      tuple(IDENTITY), usage_due)
KEY_ROWS = KeptRows(DataClass.KEY_METADATA, CONTROL, api_keys,
                    ("key_id",), key_due)


def iso(at_ms: int) -> str:
    moment = datetime.fromtimestamp(at_ms / 1000, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_date(at_ms: int) -> date:
    return datetime.fromtimestamp(at_ms / 1000, UTC).date()


def why_due(rule: ClassRetention, cutoff_ms: int) -> str:
    """Why data of this class is due, in the policy's terms."""
    kept = f"kept {rule.keep_days} days"
    if rule.data_class in STORED_CLASSES:
        return f"expired by {iso(cutoff_ms)} ({kept} from storing)"
    if rule.data_class == DataClass.USAGE:
        return (f"rolled up into invoices and from before "
                f"{iso(cutoff_ms)} ({kept})")
    if rule.data_class == DataClass.KEY_METADATA:
        return (f"keys revoked or expired before {iso(cutoff_ms)} "
                f"({kept} after their end)")
    return (f"entries from before {iso(cutoff_ms)} ({kept}): contents "
            "pruned, hashes kept")


@dataclass
class RetentionJob:
    """The schedule, applied to every store that keeps data."""

    policy: RetentionPolicy
    stores: Mapping[str, RegionalStore]
    control_engine: Engine
    audit: PrunableLog
    sink: AuditSink
    clock_ms: Callable[[], int]
    ledger_engine: Engine | None = None
    batch: int = 500
    _kept: list[tuple[KeptRows, Engine]] = field(init=False)

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, not {self.batch}")
        self._kept = [(KEY_ROWS, self.control_engine)]
        if self.ledger_engine is not None:
            self._kept.insert(0, (USAGE_ROWS, self.ledger_engine))

    def create_schema(self) -> None:
        metadata.create_all(self.control_engine)
        if self.ledger_engine is not None:
            metadata.create_all(self.ledger_engine,
                                tables=[retention_journal])

    def plan(self, now_ms: int) -> list[Due]:
        """What a run at `now_ms` would delete, per class and store."""
        self._check_in_effect(now_ms)
        due: list[Due] = []
        for region, store in self.stores.items():
            expired = store.expired(now_ms)
            for data_class in STORED_CLASSES:
                rule = self.policy.of(data_class)
                count = sum(o.data_class == data_class for o in expired)
                due.append(Due(data_class, region, count, now_ms,
                               rule.basis, why_due(rule, now_ms)))
        if self.ledger_engine is None:
            rule = self.policy.of(DataClass.USAGE)
            due.append(Due(DataClass.USAGE, LEDGER, 0,
                           rule.cutoff_ms(now_ms), rule.basis, NO_LEDGER))
        for rows, engine in self._kept:
            rule = self.policy.of(rows.data_class)
            cutoff = rule.cutoff_ms(now_ms)
            due.append(Due(rows.data_class, rows.store,
                           self._count_due(engine, rows, cutoff), cutoff,
                           rule.basis, why_due(rule, cutoff)))
        rule = self.policy.of(DataClass.AUDIT)
        cutoff = rule.cutoff_ms(now_ms)
        due.append(Due(DataClass.AUDIT, CONTROL, None, cutoff, rule.basis,
                       why_due(rule, cutoff)))
        return due

    # --8<-- [start:retention_run]
    def run(self, dry_run: bool = False) -> RetentionReport:
        """Delete what is due, each deletion journalled where it is
        made and audited from the journal; record the run."""
        now = self.clock_ms()
        if dry_run:
            return RetentionReport(now, True, tuple(self.plan(now)), ())
        self._check_in_effect(now)
        run_id = self._start(now)
        deleted: list[Deleted] = []
        destroyed = 0
        try:
            for store in self.stores.values():
                # Rows first, then the keys of every day fully passed.
                destroyed += store.delete_expired(
                    now, batch=self.batch).keys_destroyed
                deleted += self._audit_regional(store)
            for rows, engine in self._kept:
                self._delete_rows(engine, rows, now)
                deleted += self._audit_journal(engine, rows.data_class)
            deleted += self._prune_audit(now)
        except BaseException as error:  # kill -9 leaves it "running"
            self._finish(run_id, deleted, destroyed,
                         f"failed: {type(error).__name__}")
            raise
        run = self._finish(run_id, deleted, destroyed, "completed")
        return RetentionReport(now, False, (), tuple(deleted), destroyed,
                               run)
    # --8<-- [end:retention_run]

    def _check_in_effect(self, now_ms: int) -> None:
        today = utc_date(now_ms)
        if self.policy.effective > today:
            raise PolicyNotInEffectError(
                f"the retention policy takes effect on "
                f"{self.policy.effective}, after today ({today}): "
                "nothing deleted under it")

    def _audit_regional(self, store: RegionalStore) -> list[Deleted]:
        """Audit the region's journalled deletions, a run's and any a
        killed run left, one entry per owner and class."""
        groups: dict[tuple[str, DataClass], list[str]] = defaultdict(list)
        latest: dict[tuple[str, DataClass], int] = {}
        for entry in store.unaudited():
            if entry.reason != REASON:
                continue  # an erasure: audited by the subject request
            group = (entry.owner, entry.data_class)
            groups[group].append(entry.object_id)
            latest[group] = max(latest.get(group, 0), entry.deleted_at_ms)
        deleted = []
        for (owner, data_class), ids in groups.items():
            done = Deleted(data_class, store.region, owner, len(ids),
                           latest[owner, data_class],
                           self.policy.of(data_class).basis)
            self.sink.record(done.event())
            store.mark_audited(ids)
            deleted.append(done)
        return deleted

    def _delete_rows(self, engine: Engine, rows: KeptRows,
                     now_ms: int) -> None:
        """Delete due rows `batch` at a time, each batch journalled in
        its transaction."""
        if not has_table(engine, rows.table):
            return  # that chapter's store was never made: nothing kept
        rule = self.policy.of(rows.data_class)
        cutoff = rule.cutoff_ms(now_ms)
        key = tuple_(*(rows.table.c[name] for name in rows.key))
        batch = (select(*(rows.table.c[name] for name in rows.key))
                 .where(rows.due(cutoff)).limit(self.batch))
        while True:
            with engine.begin() as connection:
                count = connection.execute(
                    delete(rows.table).where(key.in_(batch))).rowcount
                if count:
                    connection.execute(retention_journal.insert().values(
                        batch_id="rb_" + secrets.token_hex(8),
                        data_class=rows.data_class.value,
                        store=rows.store, rows_deleted=count,
                        cutoff_ms=cutoff, basis=rule.basis,
                        deleted_at_ms=now_ms, audited=False))
            if count < self.batch:
                return

    def _audit_journal(self, engine: Engine,
                       data_class: DataClass) -> list[Deleted]:
        j = retention_journal.c
        with reading(engine) as connection:
            rows = connection.execute(
                select(retention_journal)
                .where(j.audited == false(), j.data_class == data_class)
                .order_by(j.deleted_at_ms, j.batch_id)).mappings().all()
        groups: dict[tuple[str, int, str], list[str]] = defaultdict(list)
        counts: dict[tuple[str, int, str], int] = defaultdict(int)
        for row in rows:
            group = (row["store"], row["cutoff_ms"], row["basis"])
            groups[group].append(row["batch_id"])
            counts[group] += row["rows_deleted"]
        deleted = []
        for (store, cutoff, basis), ids in groups.items():
            done = Deleted(data_class, store, "",
                           counts[store, cutoff, basis], cutoff, basis)
            self.sink.record(done.event())
            with engine.begin() as connection:
                connection.execute(
                    update(retention_journal)
                    .where(j.batch_id.in_(ids)).values(audited=True))
            deleted.append(done)
        return deleted

    def _prune_audit(self, now_ms: int) -> list[Deleted]:
        rule = self.policy.of(DataClass.AUDIT)
        cutoff = rule.cutoff_ms(now_ms)
        count = self.audit.prune_before(cutoff)
        if not count:
            return []
        done = Deleted(DataClass.AUDIT, CONTROL, "", count, cutoff,
                       rule.basis)
        self.sink.record(done.event())
        return [done]

    def _count_due(self, engine: Engine, rows: KeptRows,
                   cutoff_ms: int) -> int:
        if not has_table(engine, rows.table):
            return 0
        with reading(engine) as connection:
            return int(connection.scalar(
                select(func.count()).select_from(rows.table)
                .where(rows.due(cutoff_ms))) or 0)

    def _start(self, now_ms: int) -> int:
        with self.control_engine.begin() as connection:
            run_id: int = connection.execute(
                retention_runs.insert().values(
                    started_at_ms=now_ms,
                    policy_effective=self.policy.effective.isoformat(),
                    outcome="running", counts="{}", keys_destroyed=0)
                .returning(retention_runs.c.run_id)).scalar_one()
        return run_id

    def _finish(self, run_id: int, deleted: list[Deleted], destroyed: int,
                outcome: str) -> RetentionRun:
        counts = {c.value: sum(d.count for d in deleted
                               if d.data_class == c) for c in DataClass}
        with self.control_engine.begin() as connection:
            connection.execute(
                update(retention_runs)
                .where(retention_runs.c.run_id == run_id)
                .values(finished_at_ms=self.clock_ms(), outcome=outcome,
                        counts=json.dumps(counts),
                        keys_destroyed=destroyed))
        with reading(self.control_engine) as connection:
            row = connection.execute(select(retention_runs).where(
                retention_runs.c.run_id == run_id)).mappings().one()
        return run_of_row(row)


def has_table(engine: Engine, table: Table) -> bool:
    with reading(engine) as connection:
        return inspect(connection).has_table(table.name)


def run_of_row(row: RowMapping) -> RetentionRun:
    return RetentionRun(**{**row, "counts": json.loads(row["counts"])})


def last_run(engine: Engine) -> RetentionRun | None:
    """The latest run started, finished or not: None if none ever."""
    if not has_table(engine, retention_runs):
        return None
    r = retention_runs.c
    with reading(engine) as connection:
        row = connection.execute(
            select(retention_runs)
            .order_by(r.run_id.desc())
            .limit(1)).mappings().first()
    return None if row is None else run_of_row(row)
