"""One region's governed objects, sealed under keys that can be shredded.

Chapter 10, "Data residency" and "Data retention and deletion policies
for audio data". Each region has a database of its own (SQLite files
stand in for two regions; PostgreSQL by URL) holding that region's
audio and transcripts and the key-encryption keys that protect them:
keys never leave the region either. Objects are sealed as in chapter 9,
but a KEK belongs to a key scope (one owner, subject, data class and
expiry day) rather than to a customer. Erasing a subject destroys
exactly that subject's KEKs, and retention destroys the KEKs of a day
whose objects have all expired: crypto-shredding, which reaches every
copy of the ciphertext (free pages, the write-ahead log, backups) as
long as the key rows themselves are not restored. Each deleted row is
journalled in the transaction that deletes it, so a deletion killed
before its audit entry is written is audited on the next run, once. A
store at its capacity refuses what it cannot hold: nothing spills into
another region.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    delete,
    false,
    func,
    select,
    true,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from ch07_api.database import open_engine
from ch09_security.envelope import Sealed, seal, unseal
from ch09_security.key_ring import KeyRing, owner_keys
from ch09_security.key_ring import metadata as key_metadata
from ch09_security.key_store import reading
from ch09_security.master_key import load_master_key
from ch09_security.vault import (
    MAX_OBJECT_BYTES,
    ObjectTooLargeError,
    UnknownObjectError,
)
from ch10_compliance.data_classes import DataClass

DAY_MS = 86_400_000
DEFAULT_REGION_STORES = ("eu=sqlite:///build/region-eu.sqlite3 "
                         "us=sqlite:///build/region-us.sqlite3")
STORED_CLASSES = (DataClass.AUDIO, DataClass.TRANSCRIPT)

metadata = MetaData()
store_region = Table(
    "store_region", metadata,  # one row: the region this database serves
    Column("region", String(32), primary_key=True),
)
key_scopes = Table(
    "key_scopes", metadata,
    Column("scope_id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("data_class", String(16), nullable=False),
    Column("expires_day", Integer, nullable=False),  # UTC days since 1970
    Column("created_at_ms", BigInteger, nullable=False),
    UniqueConstraint("owner", "subject", "data_class", "expires_day"),
    Index("key_scopes_by_day", "expires_day"),
)
governed_objects = Table(
    "governed_objects", metadata,
    Column("object_id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("region", String(32), nullable=False),
    Column("data_class", String(16), nullable=False),
    Column("stream_id", String(64), nullable=False),
    Column("encoding", String(16), nullable=False),  # "" unless audio
    Column("sample_rate", Integer, nullable=False),  # 0 unless audio
    Column("size_bytes", BigInteger, nullable=False),  # of the plaintext
    Column("truncated", Boolean, nullable=False),  # cut at the cap
    Column("created_at_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("key_scope", String(40), nullable=False),
    Column("kek_version", Integer, nullable=False),
    Column("wrapped_key", LargeBinary(40), nullable=False),
    Column("nonce", LargeBinary(12), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    ForeignKeyConstraint(["key_scope"], [key_scopes.c.scope_id]),
    ForeignKeyConstraint(["key_scope", "kek_version"],
                         [owner_keys.c.owner, owner_keys.c.version]),
    Index("governed_objects_by_subject", "owner", "subject"),
    Index("governed_objects_by_expiry", "expires_at_ms"),
)
deletion_journal = Table(
    "deletion_journal", metadata,
    Column("object_id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("data_class", String(16), nullable=False),
    Column("region", String(32), nullable=False),
    Column("reason", String(32), nullable=False),  # erasure, retention
    Column("deleted_at_ms", BigInteger, nullable=False),
    Column("audited", Boolean, nullable=False),
    Index("deletion_journal_unaudited", "audited", "deleted_at_ms"),
)


class RegionFullError(Exception):
    """The region's store is at capacity: refused, never spilled."""


class WrongRegionError(ValueError):
    """An item, or a database, that belongs to another region."""


@dataclass(frozen=True)
class Governed:
    """Something to keep, whose it is, where, and until when."""

    owner: str
    subject: str  # the person it is about, as the customer names them
    region: str
    data_class: DataClass
    stream_id: str
    data: bytes
    expires_at_ms: int
    encoding: str = ""
    sample_rate: int = 0
    truncated: bool = False


@dataclass(frozen=True)
class StoredObject:
    """A stored object, described: never its content."""

    object_id: str
    owner: str
    subject: str
    region: str
    data_class: DataClass
    stream_id: str
    encoding: str
    sample_rate: int
    size_bytes: int
    truncated: bool
    created_at_ms: int
    expires_at_ms: int
    key_scope: str
    shredded: bool = False

    def associated_data(self) -> bytes:
        """What the ciphertext is bound to, for the object's life."""
        return json.dumps(
            ["ch10-governed-v1", self.object_id, self.owner, self.subject,
             self.region, self.data_class, self.stream_id, self.encoding,
             self.sample_rate], separators=(",", ":")).encode()

    @classmethod
    def of_row(cls, row: RowMapping) -> StoredObject:
        values = {name: row[name] for name in DESCRIBED_NAMES}
        return cls(**values, data_class=DataClass(row["data_class"]),
                   truncated=bool(row["truncated"]),
                   shredded=bool(row.get("shredded", False)))


@dataclass(frozen=True)
class Deletion:
    region: str
    keys_destroyed: int  # KEK versions destroyed
    objects_deleted: int
    object_ids: tuple[str, ...]


@dataclass(frozen=True)
class JournalEntry:
    """One deleted object, kept until its audit entry is written."""

    object_id: str
    owner: str
    subject: str
    data_class: DataClass
    region: str
    reason: str
    deleted_at_ms: int
    audited: bool


DESCRIBED_NAMES = ("object_id", "owner", "subject", "region", "stream_id",
                   "encoding", "sample_rate", "size_bytes",
                   "created_at_ms", "expires_at_ms", "key_scope")
DESCRIBED = [c for c in governed_objects.c
             if c.name not in ("kek_version", "wrapped_key", "nonce",
                               "ciphertext")]
JOURNALLED = ("object_id", "owner", "subject", "data_class")
WITH_KEYS = governed_objects.join(owner_keys, and_(
    owner_keys.c.owner == governed_objects.c.key_scope,
    owner_keys.c.version == governed_objects.c.kek_version))


def utc_day(at_ms: int) -> int:
    return at_ms // DAY_MS


@dataclass
class RegionalStore:
    region: str
    engine: Engine
    ring: KeyRing
    clock_ms: Callable[[], int]
    capacity_bytes: int | None = None

    def create_schema(self) -> None:
        """The tables, chapter 9's key table among them, and this
        database's claim to its region: opening it as another region's
        store is refused, so a misconfigured URL cannot move data."""
        key_metadata.create_all(self.engine, tables=[owner_keys])
        metadata.create_all(self.engine)
        try:
            with self.engine.begin() as connection:
                if connection.scalar(select(store_region.c.region)) is None:
                    connection.execute(
                        store_region.insert().values(region=self.region))
        except IntegrityError:
            pass  # another replica claimed it at the same moment
        with reading(self.engine) as connection:
            claimed = connection.scalar(select(store_region.c.region))
        if claimed != self.region:
            raise WrongRegionError(
                f"this database holds region {claimed}'s objects; it "
                f"cannot serve as region {self.region}'s store")

    def put(self, *items: Governed) -> list[StoredObject]:
        """Seal and store these in one transaction: all or none."""
        now = self.clock_ms()
        for item in items:
            self._check(item, now)
        try:
            with self.engine.begin() as connection:
                return self._insert_all(connection, items, now)
        except IntegrityError:
            # Another replica made the same key scope, or its first
            # key, at the same moment (PostgreSQL): this time it exists.
            with self.engine.begin() as connection:
                return self._insert_all(connection, items, now)

    def read(self, object_id: str) -> bytes:
        """The plaintext: UnknownObjectError, ShreddedError (its key
        was destroyed) or TamperedError (altered, or moved)."""
        query = (select(governed_objects, owner_keys.c.wrapped_kek)
                 .select_from(WITH_KEYS)  # one statement: one snapshot
                 .where(governed_objects.c.object_id == object_id))
        with reading(self.engine) as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            raise UnknownObjectError(
                f"no object {object_id} in region {self.region}")
        kek = self.ring.kek(row["key_scope"], row["kek_version"],
                            row["wrapped_kek"])
        sealed = Sealed(row["wrapped_key"], row["nonce"], row["ciphertext"])
        return unseal(sealed, kek,
                      StoredObject.of_row(row).associated_data())

    def info(self, object_id: str) -> StoredObject:
        found = self._described(governed_objects.c.object_id == object_id)
        if not found:
            raise UnknownObjectError(
                f"no object {object_id} in region {self.region}")
        return found[0]

    def listing(self, owner: str | None = None,
                subject: str | None = None) -> list[StoredObject]:
        o = governed_objects.c
        where: ColumnElement[bool] = true()
        if owner is not None:
            where = and_(where, o.owner == owner)
        if subject is not None:
            where = and_(where, o.subject == subject)
        return self._described(where)

    def used_bytes(self) -> int:
        with reading(self.engine) as connection:
            return self._used(connection)

    def expired(self, now_ms: int,
                data_class: DataClass | None = None) -> list[StoredObject]:
        return self._described(self._expired(now_ms, data_class))

    def delete_expired(self, now_ms: int,
                       data_class: DataClass | None = None,
                       batch: int = 500) -> Deletion:
        """Delete what expired by `now_ms`, `batch` rows a transaction,
        then destroy the KEKs of every day that has fully passed."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        o = governed_objects.c
        deleted: list[str] = []
        while True:
            with self.engine.begin() as connection:
                rows = connection.execute(
                    select(*DESCRIBED)
                    .where(self._expired(now_ms, data_class))
                    .order_by(o.expires_at_ms, o.object_id)
                    .limit(batch)).mappings().all()
                self._delete(connection, rows, "retention")
            deleted.extend(row["object_id"] for row in rows)
            if len(rows) < batch:
                break
        s = key_scopes.c
        # A scope's day has passed: every object it protected expired.
        passed = s.expires_day < utc_day(now_ms)
        if data_class is not None:
            passed = and_(passed, s.data_class == data_class)
        with self.engine.begin() as connection:
            scopes = connection.scalars(
                select(s.scope_id).where(passed, s.scope_id.in_(
                    select(owner_keys.c.owner)
                    .where(owner_keys.c.wrapped_kek.is_not(None))))
                .order_by(s.scope_id)).all()
            destroyed = sum(self.ring.destroy(connection, scope)
                            for scope in scopes)
        return Deletion(self.region, destroyed, len(deleted),
                        tuple(deleted))

    # --8<-- [start:crypto_shredding]
    def erase_subject(self, owner: str, subject: str) -> Deletion:
        """Destroy the subject's keys, then rows: no copy is readable."""
        s, o = key_scopes.c, governed_objects.c
        with self.engine.begin() as connection:
            scopes = connection.scalars(select(s.scope_id).where(
                s.owner == owner, s.subject == subject)
                .order_by(s.scope_id)).all()
            destroyed = sum(self.ring.destroy(connection, scope)
                            for scope in scopes)
            rows = connection.execute(select(*DESCRIBED).where(
                o.owner == owner, o.subject == subject).order_by(
                o.created_at_ms, o.object_id)).mappings().all()
            self._delete(connection, rows, "erasure")
        return Deletion(self.region, destroyed, len(rows),
                        tuple(row["object_id"] for row in rows))

    def _delete(self, connection: Connection,
                rows: Sequence[RowMapping], reason: str) -> None:
        """Delete rows, journalled in the caller's transaction."""
        ids = [row["object_id"] for row in rows]
        for table in (governed_objects, deletion_journal):
            # A row restored from a backup is deleted and audited anew.
            connection.execute(
                delete(table).where(table.c.object_id.in_(ids)))
        if rows:
            connection.execute(deletion_journal.insert(), [
                {**{name: row[name] for name in JOURNALLED},
                 "region": self.region, "reason": reason,
                 "deleted_at_ms": self.clock_ms(), "audited": False}
                for row in rows])
    # --8<-- [end:crypto_shredding]

    def unaudited(self) -> list[JournalEntry]:
        """Deletions whose audit entry is not yet written, oldest
        first."""
        j = deletion_journal.c
        with reading(self.engine) as connection:
            rows = connection.execute(
                select(deletion_journal).where(j.audited == false())
                .order_by(j.deleted_at_ms, j.object_id)).mappings().all()
        return [JournalEntry(**{**row,
                                "data_class": DataClass(row["data_class"]),
                                "audited": bool(row["audited"])})
                for row in rows]

    def mark_audited(self, object_ids: Iterable[str]) -> int:
        """Mark these deletions audited: how many were not yet."""
        ids = list(object_ids)
        if not ids:
            return 0
        j = deletion_journal.c
        with self.engine.begin() as connection:
            done = connection.execute(
                update(deletion_journal)
                .where(j.object_id.in_(ids), j.audited == false())
                .values(audited=True))
        return done.rowcount

    def _check(self, item: Governed, now_ms: int) -> None:
        if item.region != self.region:
            raise WrongRegionError(
                f"an object for region {item.region} offered to region "
                f"{self.region}'s store")
        if item.data_class not in STORED_CLASSES:
            raise ValueError(
                f"a regional store keeps {', '.join(STORED_CLASSES)}, "
                f"not {item.data_class}")
        if len(item.data) > MAX_OBJECT_BYTES:
            raise ObjectTooLargeError(
                f"{item.data_class} of {len(item.data)} bytes is over the "
                f"{MAX_OBJECT_BYTES}-byte cap")
        # Already expired would land in a key scope retention may have
        # shredded: its key would be made again, outliving the day.
        if item.expires_at_ms <= now_ms:
            raise ValueError(
                f"expires_at_ms {item.expires_at_ms} is not after now "
                f"({now_ms}): nothing is stored already expired")
        if not item.owner or not item.subject or not item.stream_id:
            raise ValueError("owner, subject and stream_id are required")

    def _insert_all(self, connection: Connection,
                    items: Iterable[Governed],
                    now_ms: int) -> list[StoredObject]:
        items = list(items)
        if self.capacity_bytes is not None:
            # Writers of this region queue here (PostgreSQL), so two
            # cannot both fit into the last free bytes.
            connection.execute(
                select(store_region.c.region).with_for_update())
            wanted = sum(len(item.data) for item in items)
            used = self._used(connection)
            if used + wanted > self.capacity_bytes:
                raise RegionFullError(
                    f"region {self.region} is full: {used} of "
                    f"{self.capacity_bytes} bytes used, {wanted} more "
                    "refused (never stored in another region)")
        return [self._insert(connection, item, now_ms) for item in items]

    def _insert(self, connection: Connection, item: Governed,
                now_ms: int) -> StoredObject:
        scope = self._scope(connection, item, now_ms)
        key = self.ring.current(connection, scope)
        stored = StoredObject(
            object_id="obj_" + secrets.token_hex(8), owner=item.owner,
            subject=item.subject, region=self.region,
            data_class=item.data_class, stream_id=item.stream_id,
            encoding=item.encoding, sample_rate=item.sample_rate,
            size_bytes=len(item.data), truncated=item.truncated,
            created_at_ms=now_ms, expires_at_ms=item.expires_at_ms,
            key_scope=scope)
        sealed = seal(item.data, key.kek, stored.associated_data())
        connection.execute(governed_objects.insert().values(
            **{c.name: getattr(stored, c.name) for c in DESCRIBED},
            kek_version=key.version, wrapped_key=sealed.wrapped_key,
            nonce=sealed.nonce, ciphertext=sealed.ciphertext))
        return stored

    def _scope(self, connection: Connection, item: Governed,
               now_ms: int) -> str:
        """The key scope of this subject, class and expiry day, made
        if it is the first."""
        s = key_scopes.c
        identity: dict[str, Any] = {
            "owner": item.owner, "subject": item.subject,
            "data_class": str(item.data_class),
            "expires_day": utc_day(item.expires_at_ms)}
        found = connection.scalar(select(s.scope_id).where(
            *(getattr(s, name) == value for name, value in identity.items())))
        if found is not None:
            return str(found)
        scope_id = "ks_" + secrets.token_hex(8)
        connection.execute(key_scopes.insert().values(
            scope_id=scope_id, created_at_ms=now_ms, **identity))
        return scope_id

    def _used(self, connection: Connection) -> int:
        return int(connection.scalar(select(func.coalesce(
            func.sum(governed_objects.c.size_bytes), 0))) or 0)

    def _expired(self, now_ms: int,
                 data_class: DataClass | None) -> ColumnElement[bool]:
        o = governed_objects.c
        due = o.expires_at_ms <= now_ms
        if data_class is None:
            return due
        return and_(due, o.data_class == data_class)

    def _described(self,
                   where: ColumnElement[bool]) -> list[StoredObject]:
        o = governed_objects.c
        shredded = owner_keys.c.wrapped_kek.is_(None).label("shredded")
        query = (select(*DESCRIBED, shredded).select_from(WITH_KEYS)
                 .where(where)
                 .order_by(o.created_at_ms, o.stream_id, o.data_class,
                           o.object_id))
        with reading(self.engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [StoredObject.of_row(row) for row in rows]


def parse_region_stores(text: str) -> dict[str, str]:
    """`eu=URL us=URL` as {region: URL}; two regions never share a
    database, or their objects would share one place."""
    stores: dict[str, str] = {}
    for part in text.split():
        region, _, url = part.partition("=")
        if not region or not url:
            raise ValueError(
                f"{part!r} is not region=URL (e.g. "
                "eu=sqlite:///build/region-eu.sqlite3)")
        if region in stores:
            raise ValueError(f"region {region} is given twice")
        if url in stores.values():
            raise ValueError(
                f"region {region} shares its database with another "
                "region: each region needs one of its own")
        stores[region] = url
    if not stores:
        raise ValueError("no regional stores given (region=URL ...)")
    return stores


def parse_capacities(text: str) -> dict[str, int]:
    """`eu=1000000` as {region: bytes}."""
    capacities: dict[str, int] = {}
    for part in text.split():
        region, _, size = part.partition("=")
        if not region or not size.isdigit():
            raise ValueError(
                f"{part!r} is not region=BYTES (e.g. eu=1000000)")
        capacities[region] = int(size)
    return capacities


def open_regional_stores(spec: str, master_key: bytes,
                         clock_ms: Callable[[], int],
                         capacities: Mapping[str, int] | None = None,
                         ) -> dict[str, RegionalStore]:
    """Every region's store, its schema made, keyed by region."""
    urls = parse_region_stores(spec)
    capacities = dict(capacities or {})
    unknown = sorted(set(capacities) - set(urls))
    if unknown:
        raise ValueError(
            f"a capacity for {', '.join(unknown)}, which has no store "
            f"(stores: {', '.join(urls)})")
    ring = KeyRing(master_key, clock_ms)
    stores = {
        region: RegionalStore(region, open_engine(url), ring, clock_ms,
                              capacities.get(region))
        for region, url in urls.items()}
    for store in stores.values():
        store.create_schema()
    return stores


def configured_stores(env: Mapping[str, str], clock_ms: Callable[[], int],
                      master_key: bytes | None = None
                      ) -> dict[str, RegionalStore]:
    """The stores `REGION_STORES` names (default: two SQLite files),
    sized by `REGION_CAPACITY_BYTES`, under `AUDIO_MASTER_KEY` unless
    a master key is given."""
    return open_regional_stores(
        env.get("REGION_STORES", DEFAULT_REGION_STORES),
        load_master_key(env) if master_key is None else master_key,
        clock_ms, parse_capacities(env.get("REGION_CAPACITY_BYTES", "")))
