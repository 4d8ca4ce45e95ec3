"""Sealed objects at rest: bound to their id and owner, rotated, shredded.

Every test runs on SQLite and on PostgreSQL (the `database_url`
fixture). Each reads the tables as an intruder with a copy of the
database would: only ciphertext, wrapped keys and descriptions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from ch07_api import database
from ch09_security.envelope import TamperedError, rewrap
from ch09_security.key_ring import (
    KeyRing,
    NoKeysError,
    ShreddedError,
    owner_keys,
)
from ch09_security.vault import (
    AudioVault,
    ObjectInfo,
    ObjectKind,
    ObjectTooLargeError,
    Plaintext,
    UnknownObjectError,
    sealed_objects,
)
from tests.ch09.conftest import ManualClock

MASTER = bytes(range(32))
AUDIO = bytes(range(256)) * 40  # 10 KiB of "audio"
WORDS = b"please read me the weather forecast"


def open_vault(url: str, clock: ManualClock,
               master: bytes = MASTER) -> AudioVault:
    vault = AudioVault(database.open_engine(url), KeyRing(master, clock))
    vault.create_schema()
    return vault


@pytest.fixture
def vault(database_url: str, clock: ManualClock) -> Iterator[AudioVault]:
    opened = open_vault(database_url, clock)
    yield opened
    opened.engine.dispose()


def recording(vault: AudioVault, owner: str = "acme",
              stream_id: str = "s1") -> tuple[ObjectInfo, ObjectInfo]:
    audio, transcript = vault.put(
        Plaintext(owner, ObjectKind.AUDIO, stream_id, AUDIO, "linear16",
                  16_000),
        Plaintext(owner, ObjectKind.TRANSCRIPT, stream_id, WORDS))
    return audio, transcript


def rows(vault: AudioVault) -> dict[str, dict[str, object]]:
    with vault.engine.connect() as connection:
        found = connection.execute(select(sealed_objects)).mappings().all()
    return {str(row["object_id"]): dict(row) for row in found}


def kek_rows(vault: AudioVault, owner: str) -> dict[int, bytes | None]:
    t = owner_keys.c
    with vault.engine.connect() as connection:
        found = connection.execute(
            select(t.version, t.wrapped_kek).where(t.owner == owner))
        return {int(r.version): r.wrapped_kek for r in found}


def test_objects_decrypt_and_the_tables_hold_no_plaintext(
    vault: AudioVault,
) -> None:
    audio, transcript = recording(vault)
    assert vault.read(audio.object_id) == AUDIO
    assert vault.read(transcript.object_id) == WORDS
    stored = rows(vault)
    everything = b"".join(
        value if isinstance(value, bytes) else str(value).encode()
        for row in stored.values() for value in row.values())
    assert AUDIO[1000:1064] not in everything and WORDS not in everything
    assert b"weather" not in everything
    assert stored[audio.object_id]["size_bytes"] == len(AUDIO)
    assert vault.listing("acme") == [audio, transcript]
    assert vault.info(audio.object_id) == audio


def test_moving_a_ciphertext_to_another_object_id_fails(
    vault: AudioVault,
) -> None:
    audio, _ = recording(vault)
    copy = {**rows(vault)[audio.object_id], "object_id": "obj_stolen"}
    with vault.engine.begin() as connection:
        connection.execute(sealed_objects.insert().values(copy))
    with pytest.raises(TamperedError, match="was altered"):
        vault.read("obj_stolen")


def test_moving_a_ciphertext_to_another_owner_fails(
    vault: AudioVault,
) -> None:
    audio, _ = recording(vault, "acme")
    recording(vault, "globex")  # globex has a key now
    # An insider who could even re-wrap the data key under globex's
    # KEK still cannot pass acme's audio off as globex's.
    wrapped = rows(vault)[audio.object_id]["wrapped_key"]
    assert isinstance(wrapped, bytes)
    with vault.engine.begin() as connection:
        acme = vault.ring.current(connection, "acme")
        globex = vault.ring.current(connection, "globex")
        connection.execute(
            update(sealed_objects)
            .where(sealed_objects.c.object_id == audio.object_id)
            .values(owner="globex", kek_version=globex.version,
                    wrapped_key=rewrap(wrapped, acme.kek, globex.kek)))
    with pytest.raises(TamperedError, match="object id, owner"):
        vault.read(audio.object_id)


def test_a_tampered_ciphertext_is_refused(vault: AudioVault) -> None:
    audio, _ = recording(vault)
    stored = rows(vault)[audio.object_id]["ciphertext"]
    assert isinstance(stored, bytes)
    ciphertext = bytearray(stored)
    ciphertext[100] ^= 0x80
    with vault.engine.begin() as connection:
        connection.execute(
            update(sealed_objects)
            .where(sealed_objects.c.object_id == audio.object_id)
            .values(ciphertext=bytes(ciphertext)))
    with pytest.raises(TamperedError):
        vault.read(audio.object_id)


def test_an_unknown_object_is_named(vault: AudioVault) -> None:
    with pytest.raises(UnknownObjectError, match="no object obj_nope"):
        vault.read("obj_nope")
    with pytest.raises(UnknownObjectError):
        vault.info("obj_nope")


def test_an_object_over_the_cap_is_refused_whole(
    database_url: str, clock: ManualClock,
) -> None:
    small = open_vault(database_url, clock)
    small.max_object_bytes = 1024
    with pytest.raises(ObjectTooLargeError, match="over the 1024-byte"):
        small.put(Plaintext("acme", ObjectKind.TRANSCRIPT, "s", WORDS),
                  Plaintext("acme", ObjectKind.AUDIO, "s", AUDIO))
    assert small.listing() == []
    small.engine.dispose()


def test_another_master_key_opens_nothing(
    vault: AudioVault, database_url: str, clock: ManualClock,
) -> None:
    audio, _ = recording(vault)
    other = open_vault(database_url, clock, master=os.urandom(32))
    with pytest.raises(TamperedError, match="another AUDIO_MASTER_KEY"):
        other.read(audio.object_id)
    other.engine.dispose()


def test_rotation_rewraps_data_keys_and_never_touches_the_audio(
    vault: AudioVault,
) -> None:
    audio, transcript = recording(vault, "acme")
    bystander, _ = recording(vault, "globex")
    before = rows(vault)
    done = vault.rotate("acme")
    after = rows(vault)
    assert (done.version, done.rewrapped, done.destroyed) == (2, 2, (1,))
    for object_id in (audio.object_id, transcript.object_id):
        assert after[object_id]["ciphertext"] == before[object_id][
            "ciphertext"]
        assert after[object_id]["nonce"] == before[object_id]["nonce"]
        assert after[object_id]["wrapped_key"] != before[object_id][
            "wrapped_key"]
        assert after[object_id]["kek_version"] == 2
    assert vault.read(audio.object_id) == AUDIO
    assert vault.read(transcript.object_id) == WORDS
    keks = kek_rows(vault, "acme")
    assert keks[1] is None and keks[2] is not None  # v1 destroyed
    assert after[bystander.object_id] == before[bystander.object_id]
    assert kek_rows(vault, "globex")[1] is not None
    later, _ = recording(vault, "acme", "s2")
    assert later.kek_version == 2


def test_an_owner_with_nothing_stored_has_nothing_to_rotate(
    vault: AudioVault,
) -> None:
    with pytest.raises(NoKeysError, match="nobody has no keys"):
        vault.rotate("nobody")


def test_shredding_an_owner_leaves_their_objects_unreadable_for_ever(
    vault: AudioVault,
) -> None:
    audio, transcript = recording(vault, "acme")
    vault.rotate("acme")  # shredding destroys every version
    spared, _ = recording(vault, "globex")
    assert vault.shred("acme") == 1
    for object_id in (audio.object_id, transcript.object_id):
        with pytest.raises(ShreddedError, match="can never be read again"):
            vault.read(object_id)
    assert all(info.shredded for info in vault.listing("acme"))
    assert vault.read(spared.object_id) == AUDIO
    assert not vault.info(spared.object_id).shredded
    assert set(kek_rows(vault, "acme").values()) == {None}
    assert vault.shred("acme") == 0  # nothing left to destroy
    with pytest.raises(NoKeysError):
        vault.rotate("acme")
    # What acme keeps from now on is sealed under a version never used.
    fresh, _ = recording(vault, "acme", "s2")
    assert fresh.kek_version == 3 and vault.read(fresh.object_id) == AUDIO
    with pytest.raises(ShreddedError):
        vault.read(audio.object_id)


def test_replicas_storing_a_new_owner_at_once_share_one_key(
    database_url: str, clock: ManualClock,
) -> None:
    replicas = [open_vault(database_url, clock) for _ in range(4)]
    start = threading.Barrier(len(replicas))
    stored: list[ObjectInfo] = []

    def store(replica: AudioVault) -> None:
        start.wait(timeout=10)
        stored.extend(recording(replica, "newcomer"))

    threads = [threading.Thread(target=store, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(stored) == 8
    assert {info.kek_version for info in stored} == {1}
    assert all(replicas[0].read(info.object_id) in (AUDIO, WORDS)
               for info in stored)
    for replica in replicas:
        replica.engine.dispose()
