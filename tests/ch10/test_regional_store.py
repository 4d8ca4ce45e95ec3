"""A region's store: sealed objects, capacity, erasure and retention.

Every test runs on SQLite and on PostgreSQL. The crypto-shredding tests
keep a row aside before it is deleted, as a backup or a free page
would, and show it cannot be read once its key scope is destroyed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError

from ch09_security.envelope import TamperedError
from ch09_security.key_ring import ShreddedError, owner_keys
from ch09_security.vault import (
    MAX_OBJECT_BYTES,
    ObjectTooLargeError,
    UnknownObjectError,
)
from ch10_compliance.data_classes import DataClass
from ch10_compliance.regional_store import (
    DEFAULT_REGION_STORES,
    Deletion,
    Governed,
    RegionalStore,
    RegionFullError,
    StoredObject,
    WrongRegionError,
    deletion_journal,
    governed_objects,
    open_regional_stores,
    parse_capacities,
    parse_region_stores,
)
from tests.ch10.store_fixtures import (
    AUDIO,
    DAY_MS,
    MASTER,
    NOON,
    WORDS,
    ManualClock,
    audio,
    open_store,
    transcript,
)


@pytest.fixture
def eu(database_url: str, clock: ManualClock) -> Iterator[RegionalStore]:
    store = open_store(database_url, "eu", clock)
    yield store
    store.engine.dispose()


def row_of(store: RegionalStore, object_id: str) -> dict[str, Any]:
    """The row as a backup would hold it: ciphertext and wrapped key."""
    with store.engine.connect() as connection:
        row = connection.execute(select(governed_objects).where(
            governed_objects.c.object_id == object_id)).mappings().one()
    return dict(row)


def restore(store: RegionalStore, row: dict[str, Any]) -> None:
    with store.engine.begin() as connection:
        connection.execute(governed_objects.insert().values(**row))


def journal_count(store: RegionalStore) -> int:
    with store.engine.connect() as connection:
        return int(connection.scalar(
            select(func.count()).select_from(deletion_journal)) or 0)


def test_objects_round_trip_and_the_table_holds_no_plaintext(
    eu: RegionalStore,
) -> None:
    sound, words = eu.put(audio(), transcript())
    other, = eu.put(audio(subject="bob", stream_id="st_2"))
    assert eu.read(sound.object_id) == AUDIO
    assert eu.read(words.object_id) == WORDS
    assert eu.info(sound.object_id) == sound
    assert (sound.region, sound.data_class, sound.encoding,
            sound.sample_rate, sound.size_bytes) == (
        "eu", DataClass.AUDIO, "linear16", 16_000, len(AUDIO))
    assert sound.key_scope.startswith("ks_")
    assert sound.key_scope != words.key_scope  # one scope per class
    assert eu.listing() == [sound, words, other]
    assert eu.listing("acme", "alice") == [sound, words]
    assert eu.listing(subject="bob") == [other]
    assert eu.listing("globex") == []
    assert eu.used_bytes() == 2 * len(AUDIO) + len(WORDS)
    stored = row_of(eu, sound.object_id)["ciphertext"]
    assert AUDIO[:64] not in stored and len(stored) == len(AUDIO) + 16


def test_objects_of_one_subject_class_and_day_share_a_key_scope(
    eu: RegionalStore,
) -> None:
    first, = eu.put(audio(expires_at_ms=NOON + DAY_MS))
    same_day, = eu.put(audio(stream_id="st_2",
                             expires_at_ms=NOON + DAY_MS + 3_600_000))
    next_day, = eu.put(audio(stream_id="st_3",
                             expires_at_ms=NOON + 2 * DAY_MS))
    assert first.key_scope == same_day.key_scope != next_day.key_scope


def test_unknown_objects_are_refused_by_id(eu: RegionalStore) -> None:
    with pytest.raises(UnknownObjectError, match="no object obj_x in "
                                                 "region eu"):
        eu.read("obj_x")
    with pytest.raises(UnknownObjectError, match="obj_x"):
        eu.info("obj_x")


def test_a_row_copied_under_another_id_does_not_decrypt(
    eu: RegionalStore,
) -> None:
    sound, = eu.put(audio())
    copy = row_of(eu, sound.object_id) | {"object_id": "obj_copy"}
    restore(eu, copy)
    with pytest.raises(TamperedError, match="altered"):
        eu.read("obj_copy")
    assert eu.read(sound.object_id) == AUDIO


def test_a_row_moved_to_another_subject_does_not_decrypt(
    eu: RegionalStore,
) -> None:
    sound, = eu.put(audio())
    with eu.engine.begin() as connection:
        connection.execute(update(governed_objects).where(
            governed_objects.c.object_id == sound.object_id)
            .values(subject="mallory"))
    with pytest.raises(TamperedError, match="altered"):
        eu.read(sound.object_id)


def test_an_item_for_another_region_is_refused(eu: RegionalStore) -> None:
    with pytest.raises(WrongRegionError,
                       match="region us offered to region eu's store"):
        eu.put(audio(), audio(region="us"))
    assert eu.listing() == []  # the whole call was refused


def test_bad_items_are_refused_before_anything_is_written(
    eu: RegionalStore, clock: ManualClock,
) -> None:
    too_large = audio(data=b"\0" * (MAX_OBJECT_BYTES + 1))
    with pytest.raises(ObjectTooLargeError, match="over the 16777216"):
        eu.put(audio(), too_large)
    with pytest.raises(ValueError, match="nothing is stored already "
                                         "expired"):
        eu.put(audio(expires_at_ms=clock.now_ms))
    usage = Governed("acme", "alice", "eu", DataClass.USAGE, "st_1", b"x",
                     NOON + DAY_MS)
    with pytest.raises(ValueError, match="keeps audio, transcript, not "
                                         "usage"):
        eu.put(usage)
    with pytest.raises(ValueError, match="subject and stream_id are "
                                         "required"):
        eu.put(audio(subject=""))
    assert eu.listing() == []


def test_a_full_region_refuses_and_writes_nothing(
    database_url: str, clock: ManualClock,
) -> None:
    capacity = 2 * len(AUDIO) + 10
    eu = open_store(database_url, "eu", clock, capacity)
    kept, = eu.put(audio())
    with pytest.raises(RegionFullError) as refused:
        eu.put(audio(stream_id="st_2"), audio(stream_id="st_3"))
    assert str(refused.value) == (
        f"region eu is full: {len(AUDIO)} of {capacity} bytes used, "
        f"{2 * len(AUDIO)} more refused (never stored in another region)")
    assert eu.listing() == [kept]
    assert eu.used_bytes() == len(AUDIO)
    eu.put(audio(stream_id="st_2"))  # what fits still fits
    assert eu.used_bytes() == 2 * len(AUDIO)
    eu.engine.dispose()


def test_a_database_serves_one_region_only(
    eu: RegionalStore, clock: ManualClock,
) -> None:
    us = RegionalStore("us", eu.engine, eu.ring, clock)
    with pytest.raises(WrongRegionError, match="holds region eu's objects; "
                                               "it cannot serve as region "
                                               "us's store"):
        us.create_schema()
    eu.create_schema()  # its own region again: fine


def test_erasure_destroys_exactly_the_subjects_keys_and_rows(
    eu: RegionalStore,
) -> None:
    sound, words = eu.put(audio(), transcript())
    later, = eu.put(audio(stream_id="st_2", expires_at_ms=NOON + 5 * DAY_MS))
    bob, = eu.put(audio(subject="bob", stream_id="st_3"))
    namesake, = eu.put(audio(owner="globex", stream_id="st_4"))
    erased = eu.erase_subject("acme", "alice")
    assert (erased.region, erased.keys_destroyed,
            erased.objects_deleted) == ("eu", 3, 3)
    assert set(erased.object_ids) == {
        sound.object_id, words.object_id, later.object_id}
    for gone in (sound, words, later):
        with pytest.raises(UnknownObjectError):
            eu.read(gone.object_id)
    assert eu.read(bob.object_id) == AUDIO
    assert eu.read(namesake.object_id) == AUDIO
    assert eu.listing() == [bob, namesake]
    assert eu.erase_subject("acme", "alice") == Deletion("eu", 0, 0, ())


def test_a_copy_kept_aside_cannot_be_read_after_erasure(
    eu: RegionalStore,
) -> None:
    sound, = eu.put(audio())
    backup = row_of(eu, sound.object_id)  # a backup, a free page, a WAL
    eu.erase_subject("acme", "alice")
    restore(eu, backup)  # the backup comes back; its key does not
    with pytest.raises(ShreddedError, match="can never be read again"):
        eu.read(sound.object_id)
    assert eu.info(sound.object_id).shredded
    with eu.engine.connect() as connection:
        keys = connection.execute(select(owner_keys.c.wrapped_kek).where(
            owner_keys.c.owner == sound.key_scope)).scalars().all()
    assert keys == [None]


def test_after_erasure_new_objects_get_a_key_never_used_before(
    eu: RegionalStore,
) -> None:
    old, = eu.put(audio())
    backup = row_of(eu, old.object_id)
    eu.erase_subject("acme", "alice")
    new, = eu.put(audio(stream_id="st_2"))
    assert new.key_scope == old.key_scope
    assert eu.read(new.object_id) == AUDIO
    assert row_of(eu, new.object_id)["kek_version"] == 2
    restore(eu, backup)
    with pytest.raises(ShreddedError):
        eu.read(old.object_id)


def test_erasure_journals_each_deletion_in_its_own_transaction(
    eu: RegionalStore,
) -> None:
    sound, = eu.put(audio())
    # A journal that cannot be written: the key destruction and the
    # deletion must be undone with it, so none goes unaudited.
    deletion_journal.drop(eu.engine)
    with pytest.raises(DBAPIError):
        eu.erase_subject("acme", "alice")
    assert eu.read(sound.object_id) == AUDIO
    assert not eu.info(sound.object_id).shredded


def test_deletions_stay_unaudited_until_marked(
    eu: RegionalStore, clock: ManualClock,
) -> None:
    sound, words = eu.put(audio(), transcript())
    clock.advance(1_000)
    eu.erase_subject("acme", "alice")
    pending = sorted(eu.unaudited(), key=lambda e: e.data_class)
    assert [(e.object_id, e.data_class, e.reason, e.region, e.owner,
             e.subject, e.deleted_at_ms, e.audited) for e in pending] == [
        (sound.object_id, DataClass.AUDIO, "erasure", "eu", "acme",
         "alice", NOON + 1_000, False),
        (words.object_id, DataClass.TRANSCRIPT, "erasure", "eu", "acme",
         "alice", NOON + 1_000, False)]
    assert eu.mark_audited([sound.object_id]) == 1
    assert [e.object_id for e in eu.unaudited()] == [words.object_id]
    assert eu.mark_audited([sound.object_id, words.object_id]) == 1
    assert eu.mark_audited([]) == 0
    assert eu.unaudited() == []
    assert journal_count(eu) == 2  # marked, not deleted


def test_retention_deletes_what_expired_and_keeps_the_rest(
    eu: RegionalStore, clock: ManualClock,
) -> None:
    hour = 3_600_000
    sound, words = eu.put(audio(expires_at_ms=NOON + hour),
                          transcript(expires_at_ms=NOON + hour))
    kept, = eu.put(audio(stream_id="st_2", expires_at_ms=NOON + DAY_MS))
    assert eu.expired(NOON + hour) == [sound, words]
    assert eu.expired(NOON + hour, DataClass.TRANSCRIPT) == [words]
    done = eu.delete_expired(NOON + hour, DataClass.AUDIO)
    assert done == Deletion("eu", 0, 1, (sound.object_id,))
    clock.advance(1)
    done = eu.delete_expired(NOON + hour)
    # Today's scope keeps its key: objects of today may still arrive.
    assert done == Deletion("eu", 0, 1, (words.object_id,))
    assert eu.read(kept.object_id) == AUDIO
    assert [(e.object_id, e.reason) for e in eu.unaudited()] == [
        (sound.object_id, "retention"), (words.object_id, "retention")]
    assert eu.delete_expired(NOON + hour) == Deletion("eu", 0, 0, ())


def test_retention_shreds_the_keys_of_a_day_that_has_passed(
    eu: RegionalStore, clock: ManualClock,
) -> None:
    sound, words = eu.put(audio(expires_at_ms=NOON + 1),
                          transcript(expires_at_ms=NOON + 1))
    kept, = eu.put(audio(stream_id="st_2", expires_at_ms=NOON + DAY_MS))
    backup = row_of(eu, sound.object_id)
    tomorrow = NOON + DAY_MS // 2  # midnight: day 20600 has passed
    clock.now_ms = tomorrow
    done = eu.delete_expired(tomorrow)
    assert (done.keys_destroyed, done.objects_deleted) == (2, 2)
    assert set(done.object_ids) == {sound.object_id, words.object_id}
    restore(eu, backup)
    with pytest.raises(ShreddedError):
        eu.read(sound.object_id)
    assert eu.read(kept.object_id) == AUDIO
    assert eu.delete_expired(tomorrow) == Deletion(
        "eu", 0, 1, (sound.object_id,))  # the restored row goes again
    assert eu.delete_expired(tomorrow) == Deletion("eu", 0, 0, ())


def test_retention_of_one_class_leaves_the_others_keys(
    eu: RegionalStore, clock: ManualClock,
) -> None:
    _, words = eu.put(audio(expires_at_ms=NOON + 1),
                      transcript(expires_at_ms=NOON + 1))
    backup = row_of(eu, words.object_id)
    clock.now_ms = NOON + DAY_MS
    done = eu.delete_expired(clock.now_ms, DataClass.AUDIO)
    assert (done.keys_destroyed, done.objects_deleted) == (1, 1)
    assert eu.read(words.object_id) == WORDS
    eu.delete_expired(clock.now_ms)
    restore(eu, backup)
    with pytest.raises(ShreddedError):
        eu.read(words.object_id)


def test_retention_works_through_in_batches(
    eu: RegionalStore, clock: ManualClock,
) -> None:
    stored = eu.put(*(audio(stream_id=f"st_{n}", expires_at_ms=NOON + n)
                      for n in range(1, 6)))
    done = eu.delete_expired(NOON + 10, batch=2)
    assert done.object_ids == tuple(s.object_id for s in stored)
    assert journal_count(eu) == 5
    with pytest.raises(ValueError, match="batch must be at least 1, "
                                         "not 0"):
        eu.delete_expired(NOON + 10, batch=0)


def test_replicas_storing_a_new_subject_at_once_share_one_scope(
    database_url: str, clock: ManualClock,
) -> None:
    replicas = [open_store(database_url, "eu", clock) for _ in range(4)]
    start = threading.Barrier(len(replicas))
    stored: list[StoredObject] = []

    def store(replica: RegionalStore) -> None:
        start.wait(timeout=10)
        stored.extend(replica.put(audio(), transcript()))

    threads = [threading.Thread(target=store, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(stored) == 8
    assert len({s.key_scope for s in stored}) == 2  # audio, transcript
    assert all(replicas[0].read(s.object_id) in (AUDIO, WORDS)
               for s in stored)
    for replica in replicas:
        replica.engine.dispose()


def test_replicas_filling_a_region_at_once_never_exceed_it(
    database_url: str, clock: ManualClock,
) -> None:
    capacity = 3 * len(AUDIO)
    replicas = [open_store(database_url, "eu", clock, capacity)
                for _ in range(5)]
    start = threading.Barrier(len(replicas))
    refused: list[RegionFullError] = []

    def store(replica: RegionalStore, n: int) -> None:
        start.wait(timeout=10)
        try:
            replica.put(audio(subject=f"s{n}", stream_id=f"st_{n}"))
        except RegionFullError as error:
            refused.append(error)

    threads = [threading.Thread(target=store, args=(r, n))
               for n, r in enumerate(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(refused) == 2
    assert replicas[0].used_bytes() == capacity
    for replica in replicas:
        replica.engine.dispose()


def test_region_stores_parse_from_their_setting() -> None:
    assert parse_region_stores(DEFAULT_REGION_STORES) == {
        "eu": "sqlite:///build/region-eu.sqlite3",
        "us": "sqlite:///build/region-us.sqlite3"}
    for text, why in [
            ("eu", "'eu' is not region=URL"),
            ("=sqlite:///a.db", "is not region=URL"),
            ("eu=a eu=b", "region eu is given twice"),
            ("eu=a us=a", "region us shares its database"),
            ("  ", "no regional stores given")]:
        with pytest.raises(ValueError, match=why):
            parse_region_stores(text)


def test_capacities_parse_from_their_setting() -> None:
    assert parse_capacities("eu=1000000 us=5") == {"eu": 1_000_000,
                                                   "us": 5}
    assert parse_capacities("") == {}
    with pytest.raises(ValueError, match="'eu=lots' is not region=BYTES"):
        parse_capacities("eu=lots")


def test_open_regional_stores_gives_each_region_its_own_database(
    region_urls: dict[str, str], clock: ManualClock,
) -> None:
    spec = " ".join(f"{r}={url}" for r, url in region_urls.items())
    stores = open_regional_stores(spec, MASTER, clock, {"eu": 10_000})
    assert sorted(stores) == ["eu", "us"]
    assert (stores["eu"].capacity_bytes, stores["us"].capacity_bytes) == (
        10_000, None)
    stored, = stores["eu"].put(audio())
    assert stores["us"].listing() == []
    assert stores["eu"].read(stored.object_id) == AUDIO
    with pytest.raises(ValueError, match="a capacity for ap, which has no "
                                         "store"):
        open_regional_stores(spec, MASTER, clock, {"ap": 1})
    for store in stores.values():
        store.engine.dispose()
