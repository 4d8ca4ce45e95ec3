"""The audit log: appends, the database's refusal to change it, and
`verify` naming every kind of tampering by position, on SQLite and
PostgreSQL. Tampering is done as an intruder would: with the triggers
disabled, straight in SQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import rfc8785
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import DBAPIError

from ch07_api import database
from ch10_compliance.audit import (
    AuditLog,
    ConsistencyProof,
    NotCheckpointedError,
    UnknownEntryError,
    audit_checkpoints,
    audit_entries,
    audit_nodes,
    audit_pruned,
    node_id,
)
from ch10_compliance.audit_event import (
    Action,
    AuditEvent,
    Outcome,
    UnsafeAuditEntryError,
)
from ch10_compliance.audit_verify import verify
from ch10_compliance.merkle import Frontier, leaf_hash
from ch10_compliance.proof_check import check_proof
from ch10_compliance.signer import Signer, new_seed, signer_from_seed
from tests.ch09.conftest import ManualClock

ORIGIN = "test.localhost/audit"
TABLES = ("audit_entries", "audit_nodes", "audit_checkpoints",
          "audit_pruned")


@pytest.fixture
def signer() -> Signer:
    return signer_from_seed(new_seed(), "test")


@pytest.fixture
def log(database_url: str, clock: ManualClock) -> Iterator[AuditLog]:
    opened = AuditLog(database.open_engine(database_url), clock)
    opened.create_schema()
    opened.create_schema()  # twice: a restart finds it in place
    yield opened
    opened.engine.dispose()


def event(n: int) -> AuditEvent:
    return AuditEvent(Action.KEY_CREATED, "operator:ann",
                      owner="acme", target=f"key_{n}",
                      details={"n": n, "scopes": "listen"})


def filled(log: AuditLog, signer: Signer, clock: ManualClock,
           count: int = 40, every: int = 10) -> None:
    """`count` entries, a checkpoint every `every`."""
    for n in range(count):
        log.append([event(n)])
        clock.advance(1_000)
        if (n + 1) % every == 0:
            log.checkpoint(signer, ORIGIN)


def intrude(engine: Engine) -> None:
    """What an intruder with the database's owner rights does first."""
    with engine.begin() as connection:
        for table in TABLES:
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql(
                    f"ALTER TABLE {table} DISABLE TRIGGER USER")
            else:
                for kind in ("no_update", "no_delete"):
                    connection.exec_driver_sql(
                        f"DROP TRIGGER {table}_{kind}")


def entry_text(log: AuditLog, seq: int) -> str:
    [(_, text)] = log.entries(seq, seq)
    return text


def edited(text: str, **changes: object) -> str:
    entry = json.loads(text)
    entry.update(changes)
    return rfc8785.dumps(entry).decode()


def rebuild_nodes(engine: Engine) -> None:
    """Recompute every stored hash from the entries as they now are."""
    with engine.begin() as connection:
        rows = connection.execute(select(audit_entries.c.entry)
                                  .order_by(audit_entries.c.seq)).all()
        frontier, nodes = Frontier(), []
        for row in rows:
            for node, value in frontier.append(
                    leaf_hash(row.entry.encode())):
                nodes.append({"node_id": node_id(node), "level": node[0],
                              "idx": node[1], "hash": value})
        connection.execute(delete(audit_nodes))
        connection.execute(insert(audit_nodes), nodes)


def findings(log: AuditLog, signer: Signer) -> list[tuple[int, str]]:
    report = verify(log, signer.public_key)
    return [(f.position, f.kind) for f in report.findings]


def test_an_untouched_log_verifies(log: AuditLog, signer: Signer,
                                   clock: ManualClock) -> None:
    filled(log, signer, clock)
    report = verify(log, signer.public_key)
    assert report.ok and report.size == 40 and report.checkpoints == 4
    assert report.checked_entries == 40
    assert log.append([]) == []
    assert log.checkpoint(signer, ORIGIN) is None  # nothing new


def test_appends_in_one_batch_get_consecutive_positions(
        log: AuditLog, signer: Signer) -> None:
    assert log.append([event(n) for n in range(5)]) == [0, 1, 2, 3, 4]
    assert log.append([event(5)]) == [5]
    entry = json.loads(entry_text(log, 3))
    assert entry["seq"] == 3 and entry["target"] == "key_3"
    assert verify(log, signer.public_key).ok


def test_the_database_refuses_updates_and_deletes(
        log: AuditLog, signer: Signer, clock: ManualClock) -> None:
    filled(log, signer, clock, count=10)
    for statement in (
            update(audit_entries).values(entry="{}"),
            delete(audit_entries),
            update(audit_nodes).values(hash=b"0" * 32),
            delete(audit_nodes),
            delete(audit_checkpoints),
            update(audit_checkpoints).values(note="")):
        with (pytest.raises(DBAPIError, match="append-only"),
              log.engine.begin() as connection):
            connection.execute(statement)
    assert verify(log, signer.public_key).ok


def test_postgres_refuses_truncate(postgres_url: str) -> None:
    log = AuditLog(database.open_engine(postgres_url))
    log.create_schema()
    log.append([event(0)])
    with (pytest.raises(DBAPIError, match="append-only"),
          log.engine.begin() as connection):
        connection.exec_driver_sql("TRUNCATE audit_entries")
    log.engine.dispose()


def test_an_edited_entry_is_named(log: AuditLog, signer: Signer,
                                  clock: ManualClock) -> None:
    filled(log, signer, clock)
    intrude(log.engine)
    with log.engine.begin() as connection:
        connection.execute(
            update(audit_entries).where(audit_entries.c.seq == 17)
            .values(entry=edited(entry_text(log, 17), actor="nobody")))
    assert findings(log, signer) == [(17, "edited")]


def test_an_edited_time_is_named(log: AuditLog, signer: Signer,
                                 clock: ManualClock) -> None:
    filled(log, signer, clock, count=10)
    intrude(log.engine)
    with log.engine.begin() as connection:
        connection.execute(
            update(audit_entries).where(audit_entries.c.seq == 4)
            .values(at_ms=1))
    assert findings(log, signer) == [(4, "edited")]


def test_an_entry_edited_with_its_leaf_hash_is_found_by_its_node(
        log: AuditLog, signer: Signer, clock: ManualClock) -> None:
    filled(log, signer, clock)
    intrude(log.engine)
    text = edited(entry_text(log, 21), outcome="failure")
    with log.engine.begin() as connection:
        connection.execute(
            update(audit_entries).where(audit_entries.c.seq == 21)
            .values(entry=text))
        connection.execute(
            update(audit_nodes).where(audit_nodes.c.level == 0,
                                      audit_nodes.c.idx == 21)
            .values(hash=leaf_hash(text.encode())))
    found = findings(log, signer)
    assert found[0] == (20, "node")  # the pair 20..21
    assert (30, "checkpoint") in found and (40, "checkpoint") in found


def test_a_rewrite_of_every_hash_is_caught_by_the_checkpoints(
        log: AuditLog, signer: Signer, clock: ManualClock) -> None:
    filled(log, signer, clock)
    intrude(log.engine)
    with log.engine.begin() as connection:
        connection.execute(
            update(audit_entries).where(audit_entries.c.seq == 25)
            .values(entry=edited(entry_text(log, 25), actor="nobody")))
    rebuild_nodes(log.engine)
    report = verify(log, signer.public_key)
    assert [(f.position, f.kind) for f in report.findings] == [
        (30, "checkpoint"), (40, "checkpoint")]
    assert "entries 20..29" in report.findings[0].message


def test_a_deleted_entry_is_named(log: AuditLog, signer: Signer,
                                  clock: ManualClock) -> None:
    filled(log, signer, clock)
    intrude(log.engine)
    with log.engine.begin() as connection:
        connection.execute(delete(audit_entries)
                           .where(audit_entries.c.seq == 8))
    assert findings(log, signer) == [(8, "deleted")]


def test_deleted_last_entries_are_caught_by_a_checkpoint(
        log: AuditLog, signer: Signer, clock: ManualClock) -> None:
    filled(log, signer, clock)
    intrude(log.engine)
    with log.engine.begin() as connection:
        connection.execute(delete(audit_entries)
                           .where(audit_entries.c.seq >= 35))
        connection.execute(delete(audit_nodes).where(
            audit_nodes.c.level == 0, audit_nodes.c.idx >= 35))
    found = findings(log, signer)
    assert (40, "checkpoint") in found


def test_an_inserted_entry_is_named(log: AuditLog, signer: Signer,
                                    clock: ManualClock) -> None:
    filled(log, signer, clock)
    intrude(log.engine)
    # Shift entries 12.. up by one and write a forged entry at 12.
    texts = {seq: t for seq, t in log.entries(12)}
    with log.engine.begin() as connection:
        connection.execute(delete(audit_entries)
                           .where(audit_entries.c.seq >= 12))
        forged = edited(texts[12], target="key_forged")
        rows = [{"seq": 12, "at_ms": json.loads(forged)["at_ms"],
                 "entry": forged}]
        rows += [{"seq": seq + 1, "at_ms": json.loads(t)["at_ms"],
                  "entry": t} for seq, t in texts.items()]
        connection.execute(insert(audit_entries), rows)
    found = findings(log, signer)
    assert found[0] == (12, "edited")
    assert (13, "moved") in found
    assert (40, "inserted") in found  # one more entry than hashes


def test_reordered_entries_are_named(log: AuditLog, signer: Signer,
                                     clock: ManualClock) -> None:
    filled(log, signer, clock)
    intrude(log.engine)
    five, six = entry_text(log, 5), entry_text(log, 6)
    with log.engine.begin() as connection:
        for seq, text in ((5, six), (6, five)):
            connection.execute(
                update(audit_entries).where(audit_entries.c.seq == seq)
                .values(entry=text))
    assert findings(log, signer) == [(5, "edited"), (5, "moved"),
                                     (6, "edited"), (6, "moved")]


def test_a_forged_checkpoint_signature_is_named(
        log: AuditLog, signer: Signer, clock: ManualClock) -> None:
    filled(log, signer, clock, count=20)
    intruder = signer_from_seed(new_seed(), "intruder")
    log.append([event(99)])
    log.checkpoint(intruder, ORIGIN)  # signed, but not by the log's key
    report = verify(log, signer.public_key)
    assert [(f.position, f.kind) for f in report.findings] == [
        (21, "checkpoint")]
    assert "not signed by this key" in report.findings[0].message


def test_a_checkpoint_filed_under_another_size_is_named(
        log: AuditLog, signer: Signer, clock: ManualClock) -> None:
    filled(log, signer, clock, count=20)
    intrude(log.engine)
    with log.engine.begin() as connection:
        note = connection.scalar(select(audit_checkpoints.c.note)
                                 .where(audit_checkpoints.c.size == 10))
        connection.execute(insert(audit_checkpoints).values(
            size=15, at_ms=0, note=note))
    assert findings(log, signer) == [(15, "checkpoint")]


def test_a_checkpoint_beyond_the_log_is_named(
        log: AuditLog, signer: Signer, clock: ManualClock) -> None:
    filled(log, signer, clock, count=20)
    intrude(log.engine)
    with log.engine.begin() as connection:
        connection.execute(delete(audit_entries)
                           .where(audit_entries.c.seq >= 15))
        connection.execute(delete(audit_nodes))
    kinds = {kind for _, kind in findings(log, signer)}
    assert "checkpoint" in kinds


def test_retention_prunes_entries_and_the_tree_still_verifies(
        log: AuditLog, signer: Signer, clock: ManualClock) -> None:
    filled(log, signer, clock, count=30)
    cutoff = json.loads(entry_text(log, 12))["at_ms"]
    assert log.prune_before(cutoff) == 12
    assert log.prune_before(cutoff) == 0  # idempotent
    report = verify(log, signer.public_key)
    assert report.ok and report.pruned_below == 12
    assert report.checked_entries == 18
    with pytest.raises(UnknownEntryError, match="pruned"):
        log.prove(3)
    proof = log.prove(20)
    assert check_proof(proof.as_json(signer.public_key_text),
                       signer.public_key).ok
    with (pytest.raises(DBAPIError, match="append-only"),
          log.engine.begin() as connection):  # above the mark: kept
        connection.execute(delete(audit_entries)
                           .where(audit_entries.c.seq == 12))
    with (pytest.raises(DBAPIError, match="append-only"),
          log.engine.begin() as connection):  # marks never move back
        connection.execute(delete(audit_pruned))


def test_pruning_everything_old_keeps_the_hashes(
        log: AuditLog, signer: Signer, clock: ManualClock) -> None:
    filled(log, signer, clock, count=10)
    assert log.prune_before(clock.now_ms + 1) == 10
    report = verify(log, signer.public_key)
    assert report.ok and report.size == 10


def test_inclusion_proofs_check_with_the_public_key_alone(
        log: AuditLog, signer: Signer, clock: ManualClock) -> None:
    filled(log, signer, clock, count=37, every=37)
    for seq in (0, 17, 36):
        proof = log.prove(seq).as_json(signer.public_key_text)
        assert check_proof(proof, signer.public_key).ok
        entry = json.loads(log.prove(seq).entry)
        forged = dict(proof, entry=dict(entry, actor="mallory"))
        verdict = check_proof(forged, signer.public_key)
        assert not verdict.ok and "not in the signed tree" in verdict.message
    other = signer_from_seed(new_seed(), "other")
    verdict = check_proof(log.prove(5).as_json(""), other.public_key)
    assert not verdict.ok and "not signed by this key" in verdict.message


def test_an_entry_not_yet_checkpointed_cannot_be_proved(
        log: AuditLog, signer: Signer, clock: ManualClock) -> None:
    filled(log, signer, clock, count=10)
    log.append([event(10)])
    with pytest.raises(NotCheckpointedError):
        log.prove(10)
    with pytest.raises(UnknownEntryError):
        log.prove(99)


def test_consistency_proofs_between_checkpoints(
        log: AuditLog, signer: Signer, clock: ManualClock) -> None:
    filled(log, signer, clock, count=30, every=7)
    sizes = [size for size, _ in log.checkpoints()]
    assert sizes == [7, 14, 21, 28]
    for first in sizes:
        for second in sizes:
            if first <= second:
                proof = log.prove_consistency(first, second)
                assert check_proof(proof.as_json(""),
                                   signer.public_key).ok
    good = log.prove_consistency(7, 28)
    bad = ConsistencyProof(good.first, good.second, good.proof[::-1])
    assert not check_proof(bad.as_json(""), signer.public_key).ok
    with pytest.raises(NotCheckpointedError):
        log.prove_consistency(7, 8)


def test_malformed_proofs_get_a_clear_verdict(signer: Signer) -> None:
    key = signer.public_key
    assert "unknown proof type" in check_proof({"type": "x"}, key).message
    verdict = check_proof({"type": "audit.inclusion_proof"}, key)
    assert not verdict.ok and "malformed proof" in verdict.message
    verdict = check_proof({"type": "audit.consistency_proof",
                           "first": "garbage", "second": ""}, key)
    assert not verdict.ok and "not a signed checkpoint" in verdict.message


def test_an_event_carrying_a_secret_is_refused_before_the_log() -> None:
    with pytest.raises(UnsafeAuditEntryError, match="names a secret"):
        AuditEvent(Action.AUTH_FAILED, "anonymous",
                   details={"token": "x"})
    with pytest.raises(UnsafeAuditEntryError, match="shaped like"):
        AuditEvent(Action.AUTH_FAILED, "anonymous", Outcome.FAILURE,
                   reason="bad key spk_0123456789abcdef")
    with pytest.raises(UnsafeAuditEntryError, match="shaped like"):
        AuditEvent(Action.AUTH_FAILED, "anonymous",
                   target="eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl")
    with pytest.raises(UnsafeAuditEntryError, match="dotted"):
        AuditEvent("Deleted", "operator:ann")
    with pytest.raises(UnsafeAuditEntryError, match="at most"):
        AuditEvent(Action.DATA_READ, "x", reason="r" * 201)
    with pytest.raises(UnsafeAuditEntryError, match="details"):
        AuditEvent(Action.DATA_READ, "x",
                   details={f"d{i}": i for i in range(17)})
