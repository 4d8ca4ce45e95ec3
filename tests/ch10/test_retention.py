"""The retention job: only what is due goes, each deletion audited once.

Every test runs on SQLite and on PostgreSQL, with four databases: the
control database (chapter 9's keys, the record of runs), chapter 8's
ledger, and one store per region. Time is a `ManualClock`; the audit
log is a fake that counts what it is asked to prune, and events land
in a list.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert, select

from ch07_api import database
from ch08_metering.schema import metadata as ledger_metadata
from ch08_metering.schema import usage_events
from ch09_security.key_ring import KeyRing, ShreddedError
from ch09_security.key_store import KeyHasher, KeyStore, api_keys, reading
from ch09_security.vault import UnknownObjectError
from ch10_compliance.audit_event import Action, AuditEvent
from ch10_compliance.data_classes import DataClass
from ch10_compliance.regional_store import (
    Governed,
    RegionalStore,
    deletion_journal,
)
from ch10_compliance.retention import (
    CONTROL,
    LEDGER,
    NO_LEDGER,
    Due,
    PolicyNotInEffectError,
    RetentionJob,
    last_run,
    retention_journal,
)
from ch10_compliance.retention_policy import (
    DAY_MS,
    RetentionPolicy,
    load_policy,
)
from tests.ch10.store_fixtures import (
    AUDIO,
    MASTER,
    WORDS,
    ListSink,
    ManualClock,
)

NOW = int(datetime(2027, 1, 15, 12, tzinfo=UTC).timestamp() * 1000)
POLICY = load_policy()
DETAILS = {"data_class", "count", "region", "cutoff_ms", "basis"}


class ProcessKilledError(Exception):
    """Stands for the process dying here: the audit entry is never
    written."""


@dataclass
class DyingSink(ListSink):
    """Dies when asked to audit a deletion of `data_class`: the
    deletion has committed, its audit entry is never written."""

    data_class: DataClass = DataClass.AUDIO

    def record(self, event: AuditEvent) -> None:
        if event.details["data_class"] == self.data_class:
            raise ProcessKilledError(
                f"killed before auditing {self.data_class}")
        super().record(event)


@dataclass
class FakeAuditLog:
    """Prunes `prunable` entries the first time, none after."""

    prunable: int = 0
    asked: list[int] = field(default_factory=list)

    def prune_before(self, at_ms: int) -> int:
        self.asked.append(at_ms)
        pruned, self.prunable = self.prunable, 0
        return pruned


@dataclass
class World:
    """Every store the job reaches, and the means to fill them."""

    clock: ManualClock
    stores: dict[str, RegionalStore]
    control: Engine
    ledger: Engine
    keys: KeyStore
    log: FakeAuditLog = field(default_factory=FakeAuditLog)
    sink: ListSink = field(default_factory=ListSink)

    def job(self, sink: ListSink | None = None, batch: int = 2,
            with_ledger: bool = True,
            policy: RetentionPolicy = POLICY) -> RetentionJob:
        job = RetentionJob(policy, self.stores, self.control, self.log,
                           sink or self.sink, self.clock,
                           self.ledger if with_ledger else None, batch)
        job.create_schema()
        return job

    def keep(self, region: str, data_class: DataClass, stored_days_ago: int,
             subject: str = "alice", stream_id: str = "st_1") -> str:
        """Store an object as the policy says, `stored_days_ago`."""
        self.clock.now_ms = NOW - stored_days_ago * DAY_MS
        expires = POLICY.of(data_class).expires_at_ms(self.clock.now_ms)
        data = AUDIO if data_class == DataClass.AUDIO else WORDS
        [stored] = self.stores[region].put(Governed(
            "acme", subject, region, data_class, stream_id, data, expires))
        self.clock.now_ms = NOW
        return stored.object_id

    def usage(self, event_id: str, days_ago: int,
              rollup_id: int | None) -> None:
        at = NOW - days_ago * DAY_MS
        with self.ledger.begin() as connection:
            connection.execute(insert(usage_events).values(
                customer="acme", source="test", id=event_id,
                meter="audio_seconds", value=60, features="",
                stream_id="st_1", event_time_ms=at, accepted_at_ms=at,
                body="{}", rollup_id=rollup_id))

    def key(self, made_days_ago: int, revoked_days_ago: int | None = None,
            ttl_days: int | None = None) -> str:
        self.clock.now_ms = NOW - made_days_ago * DAY_MS
        ttl = None if ttl_days is None else ttl_days * DAY_MS
        key_id = self.keys.create("acme", ttl_ms=ttl).record.key_id
        if revoked_days_ago is not None:
            self.clock.now_ms = NOW - revoked_days_ago * DAY_MS
            self.keys.revoke(key_id)
        self.clock.now_ms = NOW
        return key_id


@pytest.fixture
def world(databases: dict[str, str]) -> Iterator[World]:
    clock = ManualClock(NOW)
    stores = {}
    for region in ("eu", "us"):
        stores[region] = RegionalStore(
            region, database.open_engine(databases[region]),
            KeyRing(MASTER, clock), clock)
        stores[region].create_schema()
    ledger = database.open_engine(databases["ledger"])
    ledger_metadata.create_all(ledger)
    keys = KeyStore(database.open_engine(databases["control"]),
                    KeyHasher(b"s" * 32), clock)
    keys.create_schema()
    yield World(clock, stores, keys.engine, ledger, keys)
    for engine in (ledger, keys.engine,
                   *(s.engine for s in stores.values())):
        engine.dispose()


@dataclass(frozen=True)
class Seeded:
    due_objects: dict[str, set[str]]  # region -> object ids
    kept_objects: set[str]
    kept_usage: set[str]
    due_keys: set[str]
    kept_keys: set[str]


def seed(world: World) -> Seeded:
    """Some of every class due, some not, for reasons worth checking."""
    eu_due = {world.keep("eu", DataClass.AUDIO, 40),
              world.keep("eu", DataClass.TRANSCRIPT, 40),
              world.keep("eu", DataClass.AUDIO, 31, "bob", "st_2")}
    us_due = {world.keep("us", DataClass.AUDIO, 35, "carol", "st_3")}
    kept = {world.keep("eu", DataClass.AUDIO, 10, "dan", "st_4"),
            world.keep("us", DataClass.TRANSCRIPT, 29, "erin", "st_5")}
    for n in range(5):
        world.usage(f"old-billed-{n}", 500, rollup_id=7)
    world.usage("old-unbilled", 500, rollup_id=None)  # not invoiced yet
    world.usage("recent-billed", 30, rollup_id=8)
    due_keys = {world.key(500, revoked_days_ago=499),
                world.key(500, ttl_days=10),  # expired 490 days ago
                world.key(400, revoked_days_ago=366)}
    kept_keys = {world.key(400, revoked_days_ago=364),
                 world.key(400, ttl_days=200),  # expired 200 days ago
                 world.key(500),  # never ended
                 world.key(30, revoked_days_ago=1)}
    return Seeded({"eu": eu_due, "us": us_due}, kept,
                  {"old-unbilled", "recent-billed"}, due_keys, kept_keys)


def object_ids(world: World) -> set[str]:
    return {o.object_id for s in world.stores.values() for o in s.listing()}


def usage_ids(world: World) -> set[str]:
    with reading(world.ledger) as connection:
        return set(connection.scalars(select(usage_events.c.id)))


def key_ids(world: World) -> set[str]:
    with reading(world.control) as connection:
        return set(connection.scalars(select(api_keys.c.key_id)))


def counted(events: list[AuditEvent], data_class: DataClass,
            store: str | None = None) -> int:
    return sum(int(e.details["count"]) for e in events
               if e.details["data_class"] == data_class
               and store in (None, e.details["region"]))


def journal_rows(world: World) -> list[tuple[str, bool]]:
    rows: list[tuple[str, bool]] = []
    for store in world.stores.values():
        with reading(store.engine) as connection:
            rows += connection.execute(select(
                deletion_journal.c.object_id,
                deletion_journal.c.audited)).all()
    return [(object_id, bool(audited)) for object_id, audited in rows]


def batches(engine: Engine) -> list[tuple[int, bool]]:
    with reading(engine) as connection:
        rows = connection.execute(select(
            retention_journal.c.rows_deleted,
            retention_journal.c.audited)).all()
    return [(count, bool(audited)) for count, audited in rows]


def by_class(due: list[Due] | tuple[Due, ...]) -> dict[tuple[str, str],
                                                      Due]:
    return {(d.data_class.value, d.store): d for d in due}


def test_a_dry_run_says_what_would_go_and_why_and_changes_nothing(
        world: World) -> None:
    seeded = seed(world)
    world.log.prunable = 3
    before = (object_ids(world), usage_ids(world), key_ids(world))

    report = world.job().run(dry_run=True)

    assert report.dry_run and report.deleted == ()
    due = by_class(report.due)
    assert {k: d.count for k, d in due.items()} == {
        ("audio", "eu"): 2, ("transcript", "eu"): 1,
        ("audio", "us"): 1, ("transcript", "us"): 0,
        ("usage", LEDGER): 5, ("key_metadata", CONTROL): 3,
        ("audit", CONTROL): None}  # the log cannot count beforehand
    usage = due["usage", LEDGER]
    assert usage.basis == "contract"
    assert usage.cutoff_ms == NOW - 400 * DAY_MS
    assert usage.why == ("rolled up into invoices and from before "
                         "2025-12-11T12:00:00Z (kept 400 days)")
    assert due["audio", "eu"].why == (
        "expired by 2027-01-15T12:00:00Z (kept 30 days from storing)")
    assert due["key_metadata", CONTROL].why.startswith(
        "keys revoked or expired before 2026-01-15T12:00:00Z")
    assert due["audit", CONTROL].why.endswith(
        "contents pruned, hashes kept")
    assert (object_ids(world), usage_ids(world), key_ids(world)) == before
    assert object_ids(world) >= seeded.due_objects["eu"]
    assert world.sink.events == [] and world.log.asked == []
    assert last_run(world.control) is None


def test_a_run_deletes_only_what_is_due_per_class(world: World) -> None:
    seeded = seed(world)

    report = world.job().run()

    assert object_ids(world) == seeded.kept_objects
    assert usage_ids(world) == seeded.kept_usage
    assert key_ids(world) == seeded.kept_keys
    assert {c: report.count(c) for c in DataClass} == {
        DataClass.AUDIO: 3, DataClass.TRANSCRIPT: 1, DataClass.USAGE: 5,
        DataClass.AUDIT: 0, DataClass.KEY_METADATA: 3}
    assert world.log.asked == [NOW - 2190 * DAY_MS]


def test_every_deletion_is_audited_with_its_basis_and_no_content(
        world: World) -> None:
    seed(world)
    world.log.prunable = 4

    world.job().run()

    events = world.sink.events
    assert {e.action for e in events} == {Action.DATA_DELETED}
    assert {e.actor for e in events} == {"system:retention"}
    assert all(set(e.details) == DETAILS for e in events)
    assert counted(events, DataClass.AUDIO, "eu") == 2
    assert counted(events, DataClass.AUDIO, "us") == 1
    assert counted(events, DataClass.TRANSCRIPT, "eu") == 1
    [usage] = [e for e in events if e.details["data_class"] == "usage"]
    assert dict(usage.details) == {
        "data_class": "usage", "count": 5, "region": LEDGER,
        "cutoff_ms": NOW - 400 * DAY_MS, "basis": "contract"}
    [keys] = [e for e in events if e.details["data_class"] == "key_metadata"]
    assert keys.details["count"] == 3
    assert keys.details["basis"] == "legitimate_interests"
    [audit] = [e for e in events if e.details["data_class"] == "audit"]
    assert audit.details["count"] == 4
    assert audit.details["cutoff_ms"] == NOW - 2190 * DAY_MS
    # Objects are audited per owner, so a customer's own trail shows
    # when its data went; a stream id or subject never appears.
    assert {e.owner for e in events
            if e.details["data_class"] == "audio"} == {"acme"}
    text = repr(events)
    assert "alice" not in text and "st_1" not in text


def test_kept_objects_stay_readable_and_passed_days_lose_their_keys(
        world: World) -> None:
    seeded = seed(world)

    report = world.job().run()

    assert report.keys_destroyed == 4  # one per due object's scope
    for object_id in seeded.kept_objects:
        store = next(s for s in world.stores.values()
                     if object_id in {o.object_id for o in s.listing()})
        assert store.read(object_id) in (AUDIO, WORDS)


def test_a_second_run_finds_nothing_due(world: World) -> None:
    seed(world)
    world.job().run()
    world.sink.events.clear()

    report = world.job().run()

    assert report.deleted == () and report.keys_destroyed == 0
    assert world.sink.events == []


def test_usage_events_go_in_batches_audited_as_one_deletion(
        world: World) -> None:
    seed(world)

    world.job(batch=2).run()

    assert batches(world.ledger) == [(2, True), (2, True), (1, True)]
    assert counted(world.sink.events, DataClass.USAGE) == 5


@pytest.mark.parametrize("data_class", [
    DataClass.AUDIO, DataClass.TRANSCRIPT, DataClass.USAGE,
    DataClass.KEY_METADATA])
def test_a_run_killed_before_its_audit_is_completed_by_the_next_once(
        world: World, data_class: DataClass) -> None:
    seed(world)
    dying = DyingSink(data_class=data_class)

    with pytest.raises(ProcessKilledError):
        world.job(sink=dying).run()
    failed = last_run(world.control)
    assert failed is not None
    assert failed.outcome == "failed: ProcessKilledError"
    assert counted(dying.events, data_class) == 0  # deleted, unaudited

    world.job().run()
    world.job().run()  # and a third finds nothing left to audit

    events = dying.events + world.sink.events
    expected = {DataClass.AUDIO: 3, DataClass.TRANSCRIPT: 1,
                DataClass.USAGE: 5, DataClass.KEY_METADATA: 3}
    assert {c: counted(events, c) for c in expected} == expected
    assert all(audited for _, audited in journal_rows(world))
    assert len(journal_rows(world)) == 4
    assert all(audited for _, audited in batches(world.ledger))
    assert all(audited for _, audited in batches(world.control))


def test_an_erasure_in_the_journal_is_left_to_its_subject_request(
        world: World) -> None:
    world.keep("eu", DataClass.AUDIO, 1, "zoe", "st_9")
    world.stores["eu"].erase_subject("acme", "zoe")

    world.job().run()

    assert world.sink.events == []
    [entry] = world.stores["eu"].unaudited()
    assert entry.reason == "erasure"


def test_an_audit_log_with_nothing_old_enough_writes_no_entry(
        world: World) -> None:
    world.job().run()

    assert world.log.asked == [NOW - 2190 * DAY_MS]
    assert world.sink.events == []


def test_without_a_ledger_the_plan_says_so_and_usage_is_untouched(
        world: World) -> None:
    seed(world)
    job = world.job(with_ledger=False)

    [usage] = [d for d in job.plan(NOW) if d.data_class == DataClass.USAGE]
    report = job.run()

    assert (usage.count, usage.why) == (0, NO_LEDGER)
    assert report.count(DataClass.USAGE) == 0
    assert len(usage_ids(world)) == 7


def test_stores_never_made_hold_nothing_due(databases: dict[str, str]) -> None:
    control = database.open_engine(databases["control"])
    ledger = database.open_engine(databases["ledger"])
    clock = ManualClock(NOW)
    job = RetentionJob(POLICY, {}, control, FakeAuditLog(), ListSink(),
                       clock, ledger)
    try:
        counts = {d.data_class: d.count for d in job.plan(NOW)}
        job.create_schema()
        report = job.run()
    finally:
        control.dispose()
        ledger.dispose()
    assert counts == {DataClass.USAGE: 0, DataClass.KEY_METADATA: 0,
                      DataClass.AUDIT: None}
    assert report.deleted == ()


def test_a_policy_not_yet_in_effect_is_refused(world: World) -> None:
    seed(world)
    before = object_ids(world)
    world.clock.now_ms = int(
        datetime(2026, 12, 5, 23, tzinfo=UTC).timestamp() * 1000)
    job = world.job()

    for dry_run in (False, True):
        with pytest.raises(PolicyNotInEffectError) as caught:
            job.run(dry_run=dry_run)
        assert str(caught.value) == (
            "the retention policy takes effect on 2026-12-06, after today "
            "(2026-12-05): nothing deleted under it")
    assert object_ids(world) == before
    assert last_run(world.control) is None


def test_a_batch_below_one_is_refused(world: World) -> None:
    with pytest.raises(ValueError, match="batch must be at least 1, not 0"):
        world.job(batch=0)


def test_each_run_is_recorded_for_the_evidence_report(
        world: World) -> None:
    seed(world)
    world.clock.now_ms = NOW
    job = world.job()
    assert last_run(world.control) is None

    first = job.run().run
    world.clock.now_ms = NOW + DAY_MS
    second = job.run().run

    latest = last_run(world.control)
    assert first is not None and second is not None
    assert latest == second != first
    assert (first.started_at_ms, first.finished_at_ms) == (NOW, NOW)
    assert first.outcome == "completed"
    assert first.policy_effective == "2026-12-06"
    assert first.counts == {"audio": 3, "transcript": 1, "usage": 5,
                            "audit": 0, "key_metadata": 3}
    assert first.keys_destroyed == 4
    assert second.started_at_ms == NOW + DAY_MS
    # The one transcript stored 29 days ago expired in between; its
    # day has not passed yet, so its key lives on until tomorrow.
    assert second.counts == {"audio": 0, "transcript": 1, "usage": 0,
                             "audit": 0, "key_metadata": 0}
    assert second.keys_destroyed == 0


def test_no_record_of_runs_means_none(databases: dict[str, str]) -> None:
    engine = database.open_engine(databases["control"])
    try:
        assert last_run(engine) is None
    finally:
        engine.dispose()


# An export of a subject's objects, reading while the job deletes:
# each read gives the object, or says it was deleted by retention.
Outcome = str


def deleted_by(store: RegionalStore, object_id: str) -> str:
    with reading(store.engine) as connection:
        reason = connection.scalar(
            select(deletion_journal.c.reason)
            .where(deletion_journal.c.object_id == object_id))
    return f"deleted by {reason}"


def export_read(store: RegionalStore, object_id: str,
                expected: bytes) -> Outcome:
    try:
        data = store.read(object_id)
    except UnknownObjectError:
        return deleted_by(store, object_id)
    except ShreddedError:
        return "shredded"
    return "read" if data == expected else "half-read"


def test_an_export_listed_before_the_job_gets_a_clear_outcome(
        world: World) -> None:
    for n in range(4):
        world.keep("eu", DataClass.AUDIO, 40, "alice", f"st_{n}")
    world.keep("eu", DataClass.AUDIO, 5, "alice", "st_recent")
    store = world.stores["eu"]
    listed = store.listing("acme", "alice")

    world.job().run()

    outcomes = [export_read(store, o.object_id, AUDIO) for o in listed]
    assert outcomes == ["deleted by retention"] * 4 + ["read"]


def test_an_export_racing_the_job_never_crashes_or_half_reads(
        world: World) -> None:
    store = world.stores["eu"]
    for n in range(40):
        world.keep("eu", DataClass.AUDIO, 40, "alice", f"st_{n}")
    listed = store.listing("acme", "alice")
    start = threading.Barrier(2, timeout=30)
    outcomes: list[Outcome] = []
    failures: list[BaseException] = []

    def export() -> None:
        try:
            start.wait()
            # Passes over the listing until nothing is left to read:
            # bounded, since the job deletes them all.
            for _ in range(1_000):
                batch = [export_read(store, o.object_id, AUDIO)
                         for o in listed]
                outcomes.extend(batch)
                if "read" not in batch:
                    return
        except BaseException as error:  # the test's own failure
            failures.append(error)

    reader = threading.Thread(target=export)
    reader.start()
    start.wait()
    world.job(batch=3).run()
    reader.join(timeout=60)

    assert not reader.is_alive() and failures == []
    assert set(outcomes) <= {"read", "deleted by retention", "shredded"}
    assert outcomes[-len(listed):] == ["deleted by retention"] * 40
    assert counted(world.sink.events, DataClass.AUDIO) == 40

