"""The audit log: append-only in the database, tamper-evident by hashes.

Chapter 10, "Audit logging: how to log it (immutable, append-only),
retention requirements". Each entry is an `AuditEvent` with its position
(`seq`) and time, serialised as canonical JSON (RFC 8785: one byte
string per entry, whatever wrote it) and hashed as a leaf of an RFC
6962 Merkle tree. The tree's nodes are stored as they complete, so a
proof needs O(log n) rows, and signed checkpoints of its root are
published (`checkpoints.py`). Two defences, for two kinds of intruder:
the database refuses UPDATE and DELETE on the log's tables (triggers on
SQLite and PostgreSQL, against a mistake or a careless script; in
production the service's role also lacks those privileges), and
`verify` recomputes every hash and every checkpoint, so an edit made
with the triggers dropped is still found. The only deletion the
triggers allow is retention's: entries below a recorded prune mark,
whose leaf hashes stay, so the tree still verifies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import rfc8785
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    bindparam,
    func,
    select,
    text,
)

from ch07_api import database
from ch09_security.key_store import reading
from ch10_compliance.audit_event import AuditEvent
from ch10_compliance.checkpoints import Checkpoint
from ch10_compliance.merkle import (
    Frontier,
    Node,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    perfect_subtrees,
    range_hashes,
)
from ch10_compliance.signer import Signer

DEFAULT_DATABASE = "sqlite:///build/security.sqlite3"
CHUNK = 50_000  # entries read at a time by `verify`
LOCK_KEY = 0x0A0D17  # PostgreSQL advisory lock: one appender at a time

metadata = MetaData()
audit_entries = Table(
    "audit_entries", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at_ms", BigInteger, nullable=False, index=True),
    Column("entry", Text, nullable=False),  # canonical JSON, as hashed
)
audit_nodes = Table(
    "audit_nodes", metadata,
    # (level, idx) as one number, so a proof's nodes are one IN list
    Column("node_id", BigInteger, primary_key=True, autoincrement=False),
    Column("level", SmallInteger, nullable=False),  # 0: a leaf
    Column("idx", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    Index("audit_nodes_by_level", "level", "idx", unique=True),
)
audit_checkpoints = Table(
    "audit_checkpoints", metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("note", Text, nullable=False),  # the signed note, as published
)
audit_pruned = Table(  # retention's marks: entries below may go
    "audit_pruned", metadata,
    Column("below", BigInteger, primary_key=True, autoincrement=False),
    Column("at_ms", BigInteger, nullable=False),
)
# A proof's statements, built once: building them costs more than
# running them.
ENTRY = select(audit_entries.c.entry).where(
    audit_entries.c.seq == bindparam("seq"))
COVERING = (select(audit_checkpoints.c.size, audit_checkpoints.c.note)
            .where(audit_checkpoints.c.size > bindparam("seq"))
            .order_by(audit_checkpoints.c.size).limit(1))
NODES = select(audit_nodes.c.level, audit_nodes.c.idx, audit_nodes.c.hash
               ).where(audit_nodes.c.node_id.in_(
                   bindparam("ids", expanding=True)))
APPEND_ONLY = ("audit_entries", "audit_nodes", "audit_checkpoints",
               "audit_pruned")

# --8<-- [start:append_only_trigger]
SQLITE_TRIGGERS = [
    """CREATE TRIGGER IF NOT EXISTS {table}_no_update
       BEFORE UPDATE ON {table}
       BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS {table}_no_delete
       BEFORE DELETE ON {table} WHEN ({deletable}) IS NOT 1
       BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""",
]
# Retention may delete entries below the highest prune mark; nothing
# else may go, and no row may change.
PRUNABLE = ("OLD.seq < (SELECT COALESCE(MAX(below), 0) "
            "FROM audit_pruned)")
POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_entries' THEN
    IF OLD.seq < (SELECT COALESCE(MAX(below), 0) FROM audit_pruned) THEN
      RETURN OLD;
    END IF;
  END IF;
  RAISE EXCEPTION '%% is append-only', TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$"""
# --8<-- [end:append_only_trigger]
POSTGRES_TRIGGERS = [
    """CREATE OR REPLACE TRIGGER {table}_append_only
       BEFORE UPDATE OR DELETE ON {table}
       FOR EACH ROW EXECUTE FUNCTION audit_append_only()""",
    """CREATE OR REPLACE TRIGGER {table}_no_truncate
       BEFORE TRUNCATE ON {table}
       FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()""",
]


def node_id(node: Node) -> int:
    level, idx = node
    return idx << 6 | level  # a tree of 2**63 leaves has 64 levels


def now_ms() -> int:
    return round(time.time() * 1000)


def canonical_entry(seq: int, at_ms: int, event: AuditEvent) -> str:
    """The entry as hashed: RFC 8785 canonical JSON, ASCII-safe UTF-8."""
    return rfc8785.dumps({
        "seq": seq, "at_ms": at_ms, "action": str(event.action),
        "actor": event.actor, "outcome": str(event.outcome),
        "owner": event.owner, "target": event.target,
        "reason": event.reason, "details": dict(event.details),
    }).decode()


@dataclass(frozen=True)
class Finding:
    """Something `verify` found wrong, and where."""

    position: int  # the entry's seq, or a checkpoint's size
    kind: str  # edited, deleted, inserted, moved, checkpoint
    message: str


@dataclass
class VerifyReport:
    size: int = 0
    checked_entries: int = 0
    pruned_below: int = 0
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class InclusionProof:
    entry: str  # canonical JSON: its hash is the leaf
    index: int
    size: int  # the tree the checkpoint signs
    path: tuple[bytes, ...]
    checkpoint: str  # the signed note

    def as_json(self, public_key: str) -> dict[str, object]:
        return {"type": "audit.inclusion_proof",
                "entry": json.loads(self.entry), "leaf_index": self.index,
                "tree_size": self.size,
                "path": [h.hex() for h in self.path],
                "checkpoint": self.checkpoint, "public_key": public_key}


@dataclass(frozen=True)
class ConsistencyProof:
    first: str  # the older signed note
    second: str  # the newer
    proof: tuple[bytes, ...]

    def as_json(self, public_key: str) -> dict[str, object]:
        return {"type": "audit.consistency_proof", "first": self.first,
                "second": self.second,
                "proof": [h.hex() for h in self.proof],
                "public_key": public_key}


class UnknownEntryError(LookupError):
    """No entry at this position, or it was pruned."""


class NotCheckpointedError(LookupError):
    """No signed checkpoint covers this entry yet."""


@dataclass
class AuditLog:
    engine: Engine
    clock_ms: Callable[[], int] = now_ms

    def create_schema(self) -> None:
        metadata.create_all(self.engine)
        postgres = self.engine.dialect.name == "postgresql"
        with self.engine.begin() as connection:
            if postgres:
                connection.exec_driver_sql(POSTGRES_FUNCTION)
            for table in APPEND_ONLY:
                deletable = PRUNABLE if table == "audit_entries" else "0"
                for sql in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
                    connection.exec_driver_sql(
                        sql.format(table=table, deletable=deletable))

    def record(self, event: AuditEvent) -> None:
        self.append([event])

    def append(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append in one transaction: the positions given."""
        with self.engine.begin() as connection:
            self._lock(connection)
            frontier = self._frontier(connection)
            entries: list[dict[str, object]] = []
            nodes: list[dict[str, object]] = []
            at_ms = self.clock_ms()
            first = frontier.size
            for event in events:
                seq = frontier.size
                entry = canonical_entry(seq, at_ms, event)
                entries.append({"seq": seq, "at_ms": at_ms, "entry": entry})
                for node, value in frontier.append(
                        leaf_hash(entry.encode())):
                    nodes.append({"node_id": node_id(node),
                                  "level": node[0], "idx": node[1],
                                  "hash": value})
            if entries:
                connection.execute(audit_entries.insert(), entries)
                connection.execute(audit_nodes.insert(), nodes)
        return list(range(first, first + len(entries)))

    def size(self) -> int:
        with reading(self.engine) as connection:
            return self._size(connection)

    def checkpoint(self, signer: Signer, origin: str) -> str | None:
        """Sign and publish the current root, if the log grew since the
        last checkpoint: the new signed note, else None."""
        with self.engine.begin() as connection:
            self._lock(connection)
            frontier = self._frontier(connection)
            last = connection.scalar(select(func.max(
                audit_checkpoints.c.size)))
            if frontier.size == 0 or frontier.size == last:
                return None
            note = Checkpoint(origin, frontier.size,
                              frontier.root()).signed(signer)
            connection.execute(audit_checkpoints.insert().values(
                size=frontier.size, at_ms=self.clock_ms(), note=note))
        return note

    def checkpoints(self) -> list[tuple[int, str]]:
        c = audit_checkpoints.c
        with reading(self.engine) as connection:
            rows = connection.execute(
                select(c.size, c.note).order_by(c.size)).all()
        return [(row.size, row.note) for row in rows]

    def entries(self, first: int = 0, last: int | None = None
                ) -> list[tuple[int, str]]:
        e = audit_entries.c
        query = select(e.seq, e.entry).where(e.seq >= first)
        if last is not None:
            query = query.where(e.seq <= last)
        with reading(self.engine) as connection:
            rows = connection.execute(query.order_by(e.seq)).all()
        return [(row.seq, row.entry) for row in rows]

    def prove(self, seq: int) -> InclusionProof:
        """Entry `seq`'s inclusion in the first checkpoint covering it."""
        with reading(self.engine) as connection:
            entry = connection.scalar(ENTRY, {"seq": seq})
            if entry is None:
                raise UnknownEntryError(f"no audit entry {seq} (never "
                                        "written, or pruned)")
            found = connection.execute(COVERING, {"seq": seq}).first()
            if found is None:
                raise NotCheckpointedError(
                    f"entry {seq} is not under a checkpoint yet")
            path = self._hashes(connection,
                                inclusion_ranges(seq, found.size))
        return InclusionProof(entry, seq, found.size, tuple(path),
                              found.note)

    def prove_consistency(self, first: int, second: int
                          ) -> ConsistencyProof:
        """The proof that checkpoint `second` extends checkpoint
        `first` (both are sizes of published checkpoints)."""
        c = audit_checkpoints.c
        with reading(self.engine) as connection:
            notes = {r.size: r.note for r in connection.execute(
                select(c.size, c.note).where(c.size.in_([first, second])))}
            for size in (first, second):
                if size not in notes:
                    raise NotCheckpointedError(
                        f"no checkpoint of size {size}")
            proof = self._hashes(connection,
                                 consistency_ranges(first, second))
        return ConsistencyProof(notes[first], notes[second], tuple(proof))

    def prune_before(self, at_ms: int) -> int:
        """Delete the content of entries older than `at_ms` (retention);
        their hashes stay, so the tree and its proofs still verify."""
        e = audit_entries.c
        with self.engine.begin() as connection:
            self._lock(connection)
            first_kept = connection.scalar(
                select(func.min(e.seq)).where(e.at_ms >= at_ms))
            below = (first_kept if first_kept is not None
                     else self._size(connection))
            marked = connection.scalar(
                select(func.max(audit_pruned.c.below))) or 0
            if below <= marked:
                return 0
            connection.execute(audit_pruned.insert().values(
                below=below, at_ms=self.clock_ms()))
            done = connection.execute(
                audit_entries.delete().where(e.seq < below))
        return done.rowcount

    def _hashes(self, connection: Connection,
                ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        wanted = [n for r in ranges for n in perfect_subtrees(*r)]
        stored = self._nodes(connection, wanted)
        return range_hashes(ranges, stored.__getitem__)

    def _nodes(self, connection: Connection,
               wanted: Sequence[Node]) -> dict[Node, bytes]:
        if not wanted:
            return {}
        rows = connection.execute(
            NODES, {"ids": [node_id(w) for w in wanted]}).all()
        found = {(row.level, row.idx): bytes(row.hash) for row in rows}
        if missing := [w for w in wanted if w not in found]:
            raise LookupError(f"audit tree nodes missing: {missing[:3]}; "
                              "run audit verify")
        return found

    def _size(self, connection: Connection) -> int:
        n = audit_nodes.c
        last = connection.scalar(select(func.max(n.idx))
                                 .where(n.level == 0))
        return 0 if last is None else last + 1

    def _frontier(self, connection: Connection) -> Frontier:
        size = self._size(connection)
        wanted = Frontier.nodes_of(size)
        stored = self._nodes(connection, wanted)
        return Frontier.of(size, [stored[w] for w in wanted])

    def _lock(self, connection: Connection) -> None:
        """One appender at a time: SQLite's BEGIN IMMEDIATE is already a
        write lock; PostgreSQL takes an advisory lock for the
        transaction."""
        if self.engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                {"key": LOCK_KEY})


def open_audit_log(url: str | None) -> AuditLog:
    log = AuditLog(database.open_engine(url or DEFAULT_DATABASE))
    log.create_schema()
    return log
