"""Each owner's key-encryption keys: versioned, wrapped, destroyable.

Chapter 9, "Securing audio data: encryption at rest". The middle of the
key hierarchy. Every owner (the customer an API key belongs to) has
key-encryption keys (KEKs) of their own, numbered by version; each
wraps the data keys of that owner's objects. A KEK is stored only
wrapped under the master key (AES key wrap), which never enters the
database. Destroying a KEK (its wrapped form set to NULL) makes every
data key it wrapped, and so every object it protected, unreadable for
ever: rotation destroys the version it replaced, and shredding an owner
destroys them all. Rows are kept, so an object can say why it cannot be
read. Versions are never reused.

Writers lock what they rely on: sealing an object shares a lock on the
owner's keys, rotation and shredding take it alone, so an object is
never sealed under a version that a concurrent rotation is about to
destroy (PostgreSQL; SQLite runs one writer at a time). Two replicas
making an owner's first key at once collide on its primary key; the
loser retries and uses the winner's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    select,
    update,
)
from sqlalchemy.engine import RowMapping

from ch09_security.envelope import (
    TamperedError,
    new_key,
    unwrap_key,
    wrap_key,
)

metadata = MetaData()
owner_keys = Table(
    "owner_keys", metadata,
    Column("owner", String(200), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("wrapped_kek", LargeBinary(40)),  # NULL: destroyed
    Column("created_at_ms", BigInteger, nullable=False),
    Column("destroyed_at_ms", BigInteger),
)


class NoKeysError(LookupError):
    """The owner has no live key: nothing stored yet, or shredded."""


class ShreddedError(LookupError):
    """The key that protected an object was destroyed: it can never be
    read again."""


@dataclass(frozen=True)
class OwnerKey:
    owner: str
    version: int
    kek: bytes = field(repr=False)


@dataclass(frozen=True)
class KeyRing:
    master: bytes = field(repr=False)
    clock_ms: Callable[[], int]

    def current(self, connection: Connection, owner: str) -> OwnerKey:
        """The owner's newest KEK, made if it has none; no rotation or
        shredding of this owner can commit before this transaction."""
        rows = self._versions(connection, owner, exclusive=False)
        live = [row for row in rows if row["wrapped_kek"] is not None]
        if live:
            return self._key(live[-1])
        # Numbered from what this statement saw: a replica that makes
        # the owner's key meanwhile collides on the primary key, and
        # the caller's retry uses its key (no second version).
        return self.add(connection, owner, rows[-1]["version"] if rows
                        else 0)

    def live(self, connection: Connection, owner: str) -> list[OwnerKey]:
        """The owner's KEKs not yet destroyed, held for a change: no
        other transaction may seal under them until this one ends."""
        rows = self._versions(connection, owner, exclusive=True)
        return [self._key(row) for row in rows
                if row["wrapped_kek"] is not None]

    def kek(self, owner: str, version: int, wrapped: bytes | None) -> bytes:
        """A stored KEK, unwrapped: ShreddedError if it was destroyed."""
        if wrapped is None:
            raise ShreddedError(
                f"{owner}'s key version {version} was destroyed: what it"
                " protected can never be read again")
        try:
            return unwrap_key(self.master, wrapped)
        except TamperedError:
            raise TamperedError(
                f"{owner}'s key version {version} does not unwrap under "
                "this master key: another AUDIO_MASTER_KEY, or an altered"
                " key table") from None

    def add(self, connection: Connection, owner: str,
            newest: int | None = None) -> OwnerKey:
        """A new version, above every version the owner ever had (or
        above `newest`, when the caller has just read it)."""
        t = owner_keys.c
        if newest is None:
            newest = connection.scalar(
                select(func.max(t.version)).where(t.owner == owner))
        kek = new_key()
        version = (newest or 0) + 1
        connection.execute(owner_keys.insert().values(
            owner=owner, version=version,
            wrapped_kek=wrap_key(self.master, kek),
            created_at_ms=self.clock_ms()))
        return OwnerKey(owner, version, kek)

    def destroy(self, connection: Connection, owner: str,
                versions: Iterable[int] | None = None) -> int:
        """Destroy these versions (default: all): how many were live."""
        t = owner_keys.c
        self._lock(connection, owner, exclusive=True)
        query = update(owner_keys).where(t.owner == owner,
                                         t.wrapped_kek.is_not(None))
        if versions is not None:
            query = query.where(t.version.in_(list(versions)))
        done = connection.execute(query.values(
            wrapped_kek=None, destroyed_at_ms=self.clock_ms()))
        return done.rowcount

    def _lock(self, connection: Connection, owner: str,
              exclusive: bool) -> None:
        """Lock the owner's first key row, which is never deleted and
        stands for all their keys: sealing shares it, rotation and
        shredding take it alone (PostgreSQL; SQLite's transactions
        write one at a time already)."""
        t = owner_keys.c
        connection.execute(
            select(t.version).where(t.owner == owner).order_by(t.version)
            .limit(1).with_for_update(read=not exclusive))

    def _versions(self, connection: Connection, owner: str,
                  exclusive: bool) -> Sequence[RowMapping]:
        """Every version of the owner's keys, destroyed ones too."""
        self._lock(connection, owner, exclusive)
        t = owner_keys.c
        # Read after the lock: every change before it is seen.
        return connection.execute(
            select(owner_keys).where(t.owner == owner)
            .order_by(t.version)).mappings().all()

    def _key(self, row: RowMapping) -> OwnerKey:
        owner, version = str(row["owner"]), int(row["version"])
        return OwnerKey(owner, version,
                        self.kek(owner, version, row["wrapped_kek"]))
