"""API keys in a database: a keyed hash, scopes, an owner, a lifecycle.

Chapter 9, "API key management". A key is shown once, when it is
created, and the database keeps only its HMAC-SHA256 under a server
secret: a stolen table holds nothing a client could present, and
without the secret not even a guess can be checked against it. One
hash (not Argon2) is enough because the key is 178 random bits, not a
password, and it keeps the lookup a single indexed read. Each key has
an owner (the customer), scopes, and times: created, last used,
expires, revoked. Rolling a key creates its successor and gives the old
one an expiry, so clients can switch over within that window; revoking
ends it now. Every change stamps `changed_at`, which each replica's
watcher (`key_watch.py`) polls to end the streams a change concerns.
Times are integer Unix milliseconds. SQLite by default, PostgreSQL by
URL, through chapter 7's database setup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    case,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

from ch09_security.key_format import KeyHint, check_format, new_key


class Scope(StrEnum):
    LISTEN = "listen"  # stream audio (WebSocket, gRPC)
    TRANSCRIBE = "transcribe"  # chapter 7's transcription API
    USAGE_READ = "usage:read"
    KEYS_ADMIN = "keys:admin"


DEFAULT_SCOPES = frozenset({Scope.LISTEN, Scope.TRANSCRIBE})

metadata = MetaData()
api_keys = Table(
    "api_keys", metadata,
    Column("key_id", String(40), primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("owner", String(200), nullable=False),
    Column("scopes", String(200), nullable=False),  # space-separated
    Column("label", String(200), nullable=False, default=""),
    Column("hint", String(16), nullable=False),  # spk_...abcd
    Column("created_at_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger),
    Column("revoked_at_ms", BigInteger),
    Column("last_used_at_ms", BigInteger),
    Column("use_count", BigInteger, nullable=False, default=0),
    Column("rolled_to", String(40)),  # the successor's key_id
    Column("changed_at_ms", BigInteger, nullable=False),
    Index("api_keys_by_owner", "owner"),
    Index("api_keys_by_change", "changed_at_ms"),
)


class KeyState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class KeyRecord:
    """What the database knows of a key; never the key itself."""

    key_id: str
    digest: str
    owner: str
    scopes: frozenset[str]
    label: str
    hint: str
    created_at_ms: int
    expires_at_ms: int | None
    revoked_at_ms: int | None
    last_used_at_ms: int | None
    use_count: int
    rolled_to: str | None
    changed_at_ms: int = 0

    def state(self, now_ms: int) -> KeyState:
        if self.revoked_at_ms is not None and self.revoked_at_ms <= now_ms:
            return KeyState.REVOKED
        if self.expires_at_ms is not None and self.expires_at_ms <= now_ms:
            return KeyState.EXPIRED
        return KeyState.ACTIVE

    @classmethod
    def of_row(cls, row: RowMapping) -> KeyRecord:
        values = dict(row)
        values["scopes"] = frozenset(str(row["scopes"]).split())
        return cls(**values)


@dataclass(frozen=True)
class NewKey:
    """A key just made: the only time its full text exists."""

    key: str
    record: KeyRecord


def reading(engine: Engine) -> Connection:
    """A connection for reads only: no write lock on SQLite."""
    return engine.connect().execution_options(read_only=True)


def latest(used_ms: int) -> ColumnElement[int]:
    """The later of the stored last use and `used_ms`: replicas flush
    their counts in any order."""
    stored = api_keys.c.last_used_at_ms
    return case((stored.is_(None), used_ms), (stored > used_ms, stored),
                else_=used_ms)


class UnknownKeyError(LookupError):
    """No key has this id."""


# --8<-- [start:keyed_hash]
@dataclass(frozen=True)
class KeyHasher:
    """HMAC-SHA256 under a server secret: what the database keeps."""

    secret: bytes

    def digest(self, key: str) -> str:
        return hmac.new(self.secret, key.encode(), hashlib.sha256
                        ).hexdigest()


def find_by_key(engine: Engine, hasher: KeyHasher,
                key: str) -> KeyRecord | None:
    """One indexed read, after the offline format check."""
    check_format(key)  # MalformedKeyError: no lookup at all
    return find_by_digest(engine, hasher.digest(key))
# --8<-- [end:keyed_hash]


def find_by_digest(engine: Engine, digest: str) -> KeyRecord | None:
    query = select(api_keys).where(api_keys.c.digest == digest)
    with reading(engine) as connection:
        row = connection.execute(query).mappings().first()
    return KeyRecord.of_row(row) if row is not None else None


@dataclass
class KeyStore:
    engine: Engine
    hasher: KeyHasher
    clock_ms: Callable[[], int]

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def create(self, owner: str, scopes: Iterable[str] = DEFAULT_SCOPES,
               label: str = "", ttl_ms: int | None = None) -> NewKey:
        chosen = frozenset(scopes)
        unknown = chosen - {s.value for s in Scope}
        if unknown or not chosen:
            raise ValueError(f"scopes must be some of "
                             f"{', '.join(Scope)}; not {sorted(unknown)}")
        if not owner:
            raise ValueError("a key needs an owner")
        key, now = new_key(), self.clock_ms()
        row = {
            "key_id": "key_" + secrets.token_hex(8),
            "digest": self.hasher.digest(key),
            "owner": owner, "scopes": " ".join(sorted(chosen)),
            "label": label, "hint": str(KeyHint(key)),
            "created_at_ms": now,
            "expires_at_ms": None if ttl_ms is None else now + ttl_ms,
            "revoked_at_ms": None, "last_used_at_ms": None,
            "use_count": 0, "rolled_to": None, "changed_at_ms": now,
        }
        with self.engine.begin() as connection:
            connection.execute(api_keys.insert().values(row))
        return NewKey(key, self.show(str(row["key_id"])))

    def show(self, key_id: str) -> KeyRecord:
        query = select(api_keys).where(api_keys.c.key_id == key_id)
        with reading(self.engine) as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            raise UnknownKeyError(f"no key {key_id}")
        return KeyRecord.of_row(row)

    def owned(self, owner: str | None = None) -> list[KeyRecord]:
        query = select(api_keys).order_by(api_keys.c.created_at_ms,
                                          api_keys.c.key_id)
        if owner is not None:
            query = query.where(api_keys.c.owner == owner)
        with reading(self.engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [KeyRecord.of_row(row) for row in rows]

    # --8<-- [start:key_roll]
    def roll(self, key_id: str, overlap_ms: int) -> NewKey:
        """A successor with the same owner and scopes; the old key
        keeps working for `overlap_ms`, so clients can switch over."""
        old = self.show(key_id)
        if old.state(self.clock_ms()) is not KeyState.ACTIVE:
            raise ValueError(f"{key_id} is not active: cannot roll it")
        successor = self.create(old.owner, old.scopes, old.label)
        now = self.clock_ms()
        ends = now + overlap_ms
        if old.expires_at_ms is not None:
            ends = min(ends, old.expires_at_ms)
        self._change(key_id, expires_at_ms=ends,
                     rolled_to=successor.record.key_id)
        return successor
    # --8<-- [end:key_roll]

    def revoke(self, key_id: str) -> KeyRecord:
        """The key stops working now, on every replica within seconds."""
        record = self.show(key_id)
        if record.revoked_at_ms is None:
            self._change(key_id, revoked_at_ms=self.clock_ms())
        return self.show(key_id)

    def find_digest(self, digest: str) -> KeyRecord | None:
        return find_by_digest(self.engine, digest)

    def changed_since(self, since_ms: int) -> list[KeyRecord]:
        """Keys revoked, rolled or otherwise changed at or after
        `since_ms`: what a replica's watcher polls for."""
        query = select(api_keys).where(api_keys.c.changed_at_ms >= since_ms)
        with reading(self.engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [KeyRecord.of_row(row) for row in rows]

    def record_use(self, uses: dict[str, tuple[int, int]]) -> None:
        """Add counted uses: key_id -> (uses, last used at). Batched by
        the verifier, so a busy key costs one write per flush, not one
        per request."""
        with self.engine.begin() as connection:
            for key_id, (count, last_ms) in sorted(uses.items()):
                connection.execute(
                    update(api_keys).where(api_keys.c.key_id == key_id)
                    .values(use_count=api_keys.c.use_count + count,
                            last_used_at_ms=latest(last_ms)))

    def _change(self, key_id: str, **values: object) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(api_keys).where(api_keys.c.key_id == key_id)
                .values(changed_at_ms=self.clock_ms(), **values))
