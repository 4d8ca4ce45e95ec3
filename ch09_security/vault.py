"""Audio and transcripts at rest: sealed objects in the database.

Chapter 9, "Securing audio data: encryption at rest (AES-256)". What a
stream asked to have kept is stored as objects, each sealed under a
data key of its own (`envelope.py`) that the owner's current
key-encryption key wraps (`key_ring.py`). Objects live in the same
database as the keys (SQLite `build/security.sqlite3` by default,
PostgreSQL by URL), not in files: an object and its wrapped key are
written in one transaction, rotation re-wraps every data key of an
owner in one transaction, and there is no directory to secure, back up
and sweep apart from the rows. One object holds at most
`MAX_OBJECT_BYTES` (16 MiB: 8.7 minutes of 16 kHz linear16).

The associated data binds each ciphertext to its object id, owner,
kind, stream and audio format, so a row copied under another id or
owner fails to decrypt. Rotation re-wraps data keys without reading the
ciphertext; shredding destroys the owner's KEKs, after which their
objects raise `ShreddedError`, and other owners' objects are untouched.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from enum import StrEnum

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
    String,
    Table,
    and_,
    bindparam,
    select,
    true,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from ch09_security.envelope import Sealed, rewrap, seal, unseal
from ch09_security.key_ring import KeyRing, NoKeysError, metadata, owner_keys
from ch09_security.key_store import reading

MAX_OBJECT_BYTES = 16 * 1024 * 1024


class ObjectKind(StrEnum):
    AUDIO = "audio"  # the stream's audio, as the client sent it
    TRANSCRIPT = "transcript"  # its final transcripts, one per line


sealed_objects = Table(
    "sealed_objects", metadata,
    Column("object_id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("stream_id", String(64), nullable=False),
    Column("encoding", String(16), nullable=False),  # "" unless audio
    Column("sample_rate", Integer, nullable=False),  # 0 unless audio
    Column("size_bytes", BigInteger, nullable=False),  # of the plaintext
    Column("truncated", Boolean, nullable=False),  # cut at the cap
    Column("created_at_ms", BigInteger, nullable=False),
    Column("kek_version", Integer, nullable=False),
    Column("wrapped_key", LargeBinary(40), nullable=False),
    Column("nonce", LargeBinary(12), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    ForeignKeyConstraint(["owner", "kek_version"],
                         [owner_keys.c.owner, owner_keys.c.version]),
    Index("sealed_objects_by_owner", "owner", "created_at_ms"),
)


class UnknownObjectError(LookupError):
    """No object has this id."""


class ObjectTooLargeError(ValueError):
    """An object above the cap: refused, never stored."""


@dataclass(frozen=True)
class Plaintext:
    """Something to keep, and what describes it."""

    owner: str
    kind: ObjectKind
    stream_id: str
    data: bytes
    encoding: str = ""
    sample_rate: int = 0
    truncated: bool = False


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object, described: never its content."""

    object_id: str
    owner: str
    kind: ObjectKind
    stream_id: str
    encoding: str
    sample_rate: int
    size_bytes: int
    truncated: bool
    created_at_ms: int
    kek_version: int
    shredded: bool = False

    def associated_data(self) -> bytes:
        """What the ciphertext is bound to: fixed for the object's life
        (the key version is not: rotation changes it)."""
        return json.dumps(
            ["ch09-at-rest-v1", self.object_id, self.owner, self.kind,
             self.stream_id, self.encoding, self.sample_rate],
            separators=(",", ":")).encode()

    @classmethod
    def of_row(cls, row: RowMapping) -> ObjectInfo:
        return cls(
            object_id=row["object_id"], owner=row["owner"],
            kind=ObjectKind(row["kind"]), stream_id=row["stream_id"],
            encoding=row["encoding"], sample_rate=row["sample_rate"],
            size_bytes=row["size_bytes"], truncated=row["truncated"],
            created_at_ms=row["created_at_ms"],
            kek_version=row["kek_version"],
            shredded=bool(row.get("shredded", False)))


@dataclass(frozen=True)
class Rotation:
    owner: str
    version: int  # the owner's new KEK version
    rewrapped: int  # data keys re-wrapped; no ciphertext re-encrypted
    destroyed: tuple[int, ...]  # the versions it replaced


DESCRIBED = [c for c in sealed_objects.c
             if c.name not in ("wrapped_key", "nonce", "ciphertext")]
WITH_KEYS = sealed_objects.join(owner_keys, and_(
    owner_keys.c.owner == sealed_objects.c.owner,
    owner_keys.c.version == sealed_objects.c.kek_version))


@dataclass
class AudioVault:
    engine: Engine
    ring: KeyRing
    max_object_bytes: int = MAX_OBJECT_BYTES

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def put(self, *plaintexts: Plaintext) -> list[ObjectInfo]:
        """Seal and store these in one transaction."""
        for plaintext in plaintexts:
            if len(plaintext.data) > self.max_object_bytes:
                raise ObjectTooLargeError(
                    f"{plaintext.kind} of {len(plaintext.data)} bytes is "
                    f"over the {self.max_object_bytes}-byte cap")
        try:
            with self.engine.begin() as connection:
                return [self._insert(connection, p) for p in plaintexts]
        except IntegrityError:
            # Another replica made this owner's first key at the same
            # moment (PostgreSQL); the second attempt uses that key.
            with self.engine.begin() as connection:
                return [self._insert(connection, p) for p in plaintexts]

    def read(self, object_id: str) -> bytes:
        """The plaintext: UnknownObjectError, ShreddedError (its key
        was destroyed) or TamperedError (altered, or moved)."""
        query = (select(sealed_objects, owner_keys.c.wrapped_kek)
                 .select_from(WITH_KEYS)  # one statement: one snapshot
                 .where(sealed_objects.c.object_id == object_id))
        with reading(self.engine) as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            raise UnknownObjectError(f"no object {object_id}")
        kek = self.ring.kek(row["owner"], row["kek_version"],
                            row["wrapped_kek"])
        sealed = Sealed(row["wrapped_key"], row["nonce"], row["ciphertext"])
        return unseal(sealed, kek, ObjectInfo.of_row(row).associated_data())

    def info(self, object_id: str) -> ObjectInfo:
        found = self._described(sealed_objects.c.object_id == object_id)
        if not found:
            raise UnknownObjectError(f"no object {object_id}")
        return found[0]

    def listing(self, owner: str | None = None) -> list[ObjectInfo]:
        t = sealed_objects.c
        return self._described(true() if owner is None else t.owner == owner)

    def rotate(self, owner: str) -> Rotation:
        """A new KEK version for `owner`; every data key it wraps is
        re-wrapped, and the versions it replaces are destroyed."""
        t = sealed_objects.c
        with self.engine.begin() as connection:
            old = {k.version: k.kek for k in self.ring.live(connection,
                                                             owner)}
            if not old:
                raise NoKeysError(f"{owner} has no keys to rotate")
            new = self.ring.add(connection, owner)
            rows = connection.execute(
                select(t.object_id, t.kek_version, t.wrapped_key)
                .where(t.owner == owner, t.kek_version.in_(list(old)))).all()
            if rows:
                connection.execute(
                    update(sealed_objects)
                    .where(t.object_id == bindparam("b_id"))
                    .values(kek_version=new.version,
                            wrapped_key=bindparam("b_wrapped")),
                    [{"b_id": r.object_id,
                      "b_wrapped": rewrap(r.wrapped_key, old[r.kek_version],
                                          new.kek)} for r in rows])
            self.ring.destroy(connection, owner, old)
        return Rotation(owner, new.version, len(rows), tuple(sorted(old)))

    def shred(self, owner: str) -> int:
        """Destroy every KEK of `owner`: key versions destroyed."""
        with self.engine.begin() as connection:
            return self.ring.destroy(connection, owner)

    def _insert(self, connection: Connection,
                plaintext: Plaintext) -> ObjectInfo:
        key = self.ring.current(connection, plaintext.owner)
        info = ObjectInfo(
            object_id="obj_" + secrets.token_hex(8),
            owner=plaintext.owner, kind=plaintext.kind,
            stream_id=plaintext.stream_id, encoding=plaintext.encoding,
            sample_rate=plaintext.sample_rate,
            size_bytes=len(plaintext.data), truncated=plaintext.truncated,
            created_at_ms=self.ring.clock_ms(), kek_version=key.version)
        sealed = seal(plaintext.data, key.kek, info.associated_data())
        connection.execute(sealed_objects.insert().values(
            **{c.name: getattr(info, c.name) for c in DESCRIBED},
            wrapped_key=sealed.wrapped_key, nonce=sealed.nonce,
            ciphertext=sealed.ciphertext))
        return info

    def _described(self, where: ColumnElement[bool]) -> list[ObjectInfo]:
        o = sealed_objects.c
        shredded = owner_keys.c.wrapped_kek.is_(None).label("shredded")
        query = (select(*DESCRIBED, shredded).select_from(WITH_KEYS)
                 .where(where)
                 .order_by(o.created_at_ms, o.stream_id, o.kind))
        with reading(self.engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [ObjectInfo.of_row(row) for row in rows]
