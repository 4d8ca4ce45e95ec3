"""Checking a presented key: offline first, then one cached lookup.

Chapter 9, "API key management: usage monitoring, revocation". Every
handshake presents a key, so checking one must cost microseconds: the
format and checksum are checked without any I/O (a made-up key never
reaches the database), then a small cache of recent verdicts answers,
and only a miss reads the database, once, by the key's keyed hash. A
cached verdict is trusted for a few seconds at most, and the watcher
(`key_watch.py`) drops a key's entry as soon as any replica changes it.
Uses are counted in memory and written in batches. Chapter 4's
`SPEECH_API_KEYS` keep working for development: such a key belongs to
the `development` owner and may stream and transcribe.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ch04_streaming.auth import ApiKeys
from ch09_security.key_format import MalformedKeyError, looks_like_key
from ch09_security.key_store import (
    KeyRecord,
    KeyState,
    KeyStore,
    Scope,
    UnknownKeyError,
    find_by_key,
)
from ch09_security.tokens import TokenClaims

DEVELOPMENT_OWNER = "development"


@dataclass(frozen=True)
class Verdict:
    """A credential's check: the record of the key behind it if it may
    be used, else why not; and the token's claims, if it was one."""

    record: KeyRecord | None
    reason: str = ""
    token: TokenClaims | None = None

    @property
    def scopes(self) -> frozenset[str]:
        """What it may do: a token's scopes, else its key's."""
        if self.token is not None:
            return self.token.scopes
        return self.record.scopes if self.record is not None else frozenset()

    @property
    def ok(self) -> bool:
        return self.record is not None


def development_record(digest: str) -> KeyRecord:
    return KeyRecord(
        key_id=DEVELOPMENT_OWNER, digest=digest, owner=DEVELOPMENT_OWNER,
        scopes=frozenset({Scope.LISTEN, Scope.TRANSCRIBE}), label="",
        hint="SPEECH_API_KEYS", created_at_ms=0, expires_at_ms=None,
        revoked_at_ms=None, last_used_at_ms=None, use_count=0,
        rolled_to=None)


@dataclass
class KeyVerifier:
    store: KeyStore
    development: ApiKeys = field(default_factory=lambda: ApiKeys(()))
    cache_ttl_ms: int = 5_000
    max_cached: int = 10_000
    _cache: OrderedDict[str, tuple[KeyRecord, int]] = field(
        default_factory=OrderedDict, init=False)
    _uses: dict[str, tuple[int, int]] = field(default_factory=dict,
                                              init=False)
    _digests: dict[str, str] = field(default_factory=dict, init=False)

    @property
    def clock_ms(self) -> Callable[[], int]:
        return self.store.clock_ms

    def verify(self, candidate: str | None) -> bool:
        """Chapter 4's question: may this key open a stream? (Its
        use is counted once the stream is admitted.)"""
        return self.check(candidate).ok

    # --8<-- [start:key_check]
    def check(self, candidate: str | None) -> Verdict:
        if not candidate:
            return Verdict(None, "missing API key")
        if not looks_like_key(candidate):
            if self.development.verify(candidate):
                return Verdict(development_record(DEVELOPMENT_OWNER))
            return Verdict(None, "invalid API key")
        digest = self.store.hasher.digest(candidate)
        record = self._cached(digest)
        if record is None:
            try:  # the offline checksum, then one indexed read
                record = find_by_key(self.store.engine,
                                     self.store.hasher, candidate)
            except MalformedKeyError as error:
                return Verdict(None, f"invalid API key: {error}")
            if record is None:
                return Verdict(None, "invalid API key")
            self._remember(record)
        state = record.state(self.clock_ms())
        if state is not KeyState.ACTIVE:
            return Verdict(None, f"API key {state}")
        return Verdict(record)
    # --8<-- [end:key_check]

    def check_id(self, key_id: str) -> Verdict:
        """The key that granted a token, by its id: may it still?"""
        if key_id == DEVELOPMENT_OWNER and self.development.keys:
            return Verdict(development_record(DEVELOPMENT_OWNER))
        digest = self._digests.get(key_id)
        record = self._cached(digest) if digest is not None else None
        if record is None:
            try:
                record = self.store.show(key_id)
            except UnknownKeyError:
                return Verdict(None, "the granting key does not exist")
            self._remember(record)
        state = record.state(self.clock_ms())
        if state is not KeyState.ACTIVE:
            return Verdict(None, f"the granting API key is {state}")
        return Verdict(record)

    def forget(self, digest: str) -> None:
        """Another replica changed this key: read it afresh next time."""
        self._cache.pop(digest, None)

    def learn(self, record: KeyRecord) -> None:
        """The watcher read a changed key: cache its new state."""
        self._remember(record)

    def take_uses(self) -> dict[str, tuple[int, int]]:
        """The uses counted since the last call, for `record_use`."""
        uses, self._uses = self._uses, {}
        return uses

    def _cached(self, digest: str) -> KeyRecord | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        record, fetched_at = entry
        if self.clock_ms() - fetched_at > self.cache_ttl_ms:
            del self._cache[digest]
            return None
        self._cache.move_to_end(digest)
        return record

    def _remember(self, record: KeyRecord) -> None:
        self._cache[record.digest] = (record, self.clock_ms())
        self._cache.move_to_end(record.digest)
        self._digests[record.key_id] = record.digest
        while len(self._cache) > self.max_cached:
            _, (evicted, _) = self._cache.popitem(last=False)
            self._digests.pop(evicted.key_id, None)

    def count_use(self, record: KeyRecord) -> None:
        """A request or stream was served with this key."""
        if record.owner == DEVELOPMENT_OWNER:
            return  # not in the database
        count, _ = self._uses.get(record.key_id, (0, 0))
        self._uses[record.key_id] = (count + 1, self.clock_ms())
