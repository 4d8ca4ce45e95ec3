"""Checking the whole audit log: every entry, every node, every checkpoint.

Chapter 10, "Audit logging: how to log it (immutable, append-only)".
`verify` walks the log in one pass, in chunks, as an auditor would with
a copy of the database and the public key. Each entry's canonical JSON
is hashed again and compared with its stored leaf hash, its position
with the `seq` written inside it; the tree is rebuilt from the leaves
and every stored node compared; every checkpoint's signature is checked
and its root compared with the rebuilt tree at its size. An entry
edited, deleted, inserted or moved is named by position. An intruder
who also rewrote the stored hashes is caught by the first checkpoint
signed before the change, and named by the range of entries between it
and the last checkpoint that still matches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PublicKey,
)
from sqlalchemy import Connection, func, select

from ch09_security.key_store import reading
from ch10_compliance.audit import (
    CHUNK,
    AuditLog,
    Finding,
    VerifyReport,
    audit_checkpoints,
    audit_entries,
    audit_nodes,
    audit_pruned,
)
from ch10_compliance.checkpoints import CheckpointError, parse_checkpoint
from ch10_compliance.merkle import Frontier, Node, leaf_hash

MISSING = b"\x00" * 32  # stands for a lost hash, so the walk goes on


@dataclass
class Walk:
    """One pass over the log: the tree rebuilt so far, what is wrong."""

    report: VerifyReport
    checkpoints: list[tuple[int, str]]
    public_key: Ed25519PublicKey
    frontier: Frontier
    last_good: int = 0  # the largest checkpoint whose root matched
    next_checkpoint: int = 0
    bad_nodes: list[tuple[int, int]] = field(default_factory=list)

    def found(self, position: int, kind: str, message: str) -> None:
        self.report.findings.append(Finding(position, kind, message))

    def check_entry(self, seq: int, stored: bytes | None,
                    row: tuple[int, str] | None) -> bytes:
        """The leaf hash to build the tree with; findings on the way."""
        if row is None:
            if seq >= self.report.pruned_below:
                self.found(seq, "deleted", f"entry {seq} was deleted")
            return stored or MISSING
        at_ms, entry = row
        self.report.checked_entries += 1
        computed = leaf_hash(entry.encode())
        if stored is None:
            self.found(seq, "inserted",
                       f"entry {seq} has no recorded hash: inserted")
        elif stored != computed:
            self.found(seq, "edited", f"entry {seq} was edited")
        claimed = json.loads(entry)
        if claimed.get("seq") != seq:
            self.found(seq, "moved", f"entry at position {seq} was "
                       f"written as entry {claimed.get('seq')}: moved")
        elif claimed.get("at_ms") != at_ms:
            self.found(seq, "edited", f"entry {seq}'s time was edited")
        return stored or computed

    def check_checkpoints(self) -> None:
        """Every checkpoint at the size the rebuilt tree has reached."""
        while (self.next_checkpoint < len(self.checkpoints)
               and self.checkpoints[self.next_checkpoint][0]
               <= self.frontier.size):
            size, note = self.checkpoints[self.next_checkpoint]
            self.next_checkpoint += 1
            self.report.checkpoints += 1
            try:
                signed = parse_checkpoint(note, self.public_key)
            except CheckpointError as error:
                self.found(size, "checkpoint", str(error))
                continue
            if signed.size != size:
                self.found(size, "checkpoint", f"checkpoint filed under "
                           f"size {size} signs size {signed.size}")
            elif signed.root != self.frontier.root():
                self.found(size, "checkpoint", (
                    f"checkpoint of size {size} does not match the log:"
                    f" entries {self.last_good}..{size - 1} were "
                    "changed after it was signed"))
            else:
                self.last_good = size


def verify(log: AuditLog, public_key: Ed25519PublicKey) -> VerifyReport:
    """Recompute the log and check it against its signed checkpoints."""
    with reading(log.engine) as connection:
        if log.engine.dialect.name == "postgresql":
            connection.exec_driver_sql(  # one snapshot for the walk
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        size = max(log._size(connection), _entry_count(connection))
        c = audit_checkpoints.c
        checkpoints = [(r.size, r.note) for r in connection.execute(
            select(c.size, c.note).order_by(c.size))]
        report = VerifyReport(size=size, pruned_below=connection.scalar(
            select(func.max(audit_pruned.c.below))) or 0)
        walk = Walk(report, checkpoints, public_key, Frontier())
        for start in range(0, size, CHUNK):
            _walk_chunk(connection, walk, start, min(size, start + CHUNK))
        for late, _ in checkpoints[walk.next_checkpoint:]:
            walk.found(late, "checkpoint", f"checkpoint of size {late} "
                       f"is beyond the log's {size} entries: deleted")
    report.findings.sort(key=lambda finding: finding.position)
    return report


def _entry_count(connection: Connection) -> int:
    last = connection.scalar(select(func.max(audit_entries.c.seq)))
    return 0 if last is None else last + 1


def _walk_chunk(connection: Connection, walk: Walk, start: int,
                end: int) -> None:
    n, e = audit_nodes.c, audit_entries.c
    leaves = {r.idx: bytes(r.hash) for r in connection.execute(
        select(n.idx, n.hash)
        .where(n.level == 0, n.idx >= start, n.idx < end))}
    rows = {r.seq: (r.at_ms, r.entry) for r in connection.execute(
        select(e.seq, e.at_ms, e.entry)
        .where(e.seq >= start, e.seq < end))}
    completed: list[tuple[Node, bytes]] = []
    for seq in range(start, end):
        leaf = walk.check_entry(seq, leaves.get(seq), rows.get(seq))
        completed.extend(walk.frontier.append(leaf)[1:])
        walk.check_checkpoints()
    _compare_nodes(connection, walk, completed)


def _compare_nodes(connection: Connection, walk: Walk,
                   computed: Sequence[tuple[Node, bytes]]) -> None:
    """The stored inner nodes (what proofs are made of) against the
    rebuilt ones, one indexed range per level."""
    by_level: dict[int, list[tuple[int, bytes]]] = {}
    for (level, idx), value in computed:
        by_level.setdefault(level, []).append((idx, value))
    n = audit_nodes.c
    for level, nodes in sorted(by_level.items()):
        stored = {r.idx: bytes(r.hash) for r in connection.execute(
            select(n.idx, n.hash).where(
                n.level == level, n.idx >= nodes[0][0],
                n.idx <= nodes[-1][0]))}
        for idx, value in nodes:
            first, last = idx << level, ((idx + 1) << level) - 1
            if stored.get(idx) == value or any(  # only the lowest
                    first <= a and b <= last for a, b in walk.bad_nodes):
                continue
            walk.bad_nodes.append((first, last))
            walk.found(first, "node", (
                f"tree node {level}/{idx} does not match entries "
                f"{first}..{last}: one of them was changed"))
