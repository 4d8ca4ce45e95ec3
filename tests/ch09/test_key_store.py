"""The key store: shown once, kept as a keyed hash, rolled and revoked."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from ch09_security.key_format import new_key
from ch09_security.key_store import (
    KeyState,
    KeyStore,
    Scope,
    UnknownKeyError,
    api_keys,
)
from ch09_security.key_verifier import KeyVerifier
from tests.ch09.conftest import ManualClock, open_store

HOUR_MS = 3_600_000


def queries(store: KeyStore) -> list[str]:
    """The SELECTs the store's engine runs from now on."""
    seen: list[str] = []

    def record(*args: object) -> None:
        statement = str(args[2])
        if statement.startswith("SELECT"):
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    return seen


def test_the_database_never_holds_the_key(store: KeyStore) -> None:
    made = store.create("acme", label="ci")
    with store.engine.connect() as connection:
        rows = connection.execute(select(api_keys)).mappings().all()
    stored = " ".join(str(value) for row in rows for value in row.values())
    assert made.key not in stored
    assert made.key[4:-6] not in stored  # not even the random part
    assert made.record.hint == f"spk_...{made.key[-4:]}"
    assert made.record.digest == store.hasher.digest(made.key)


def test_the_hash_is_keyed_by_the_server_secret(
    store: KeyStore, database_url: str, clock: ManualClock,
) -> None:
    made = store.create("acme")
    other = open_store(database_url, clock, secret=b"t" * 32)
    try:
        assert KeyVerifier(store).check(made.key).ok
        verdict = KeyVerifier(other).check(made.key)
        assert not verdict.ok and verdict.reason == "invalid API key"
    finally:
        other.engine.dispose()


def test_a_key_has_owner_scopes_and_times(store: KeyStore,
                                          clock: ManualClock) -> None:
    made = store.create("acme", [Scope.LISTEN, Scope.USAGE_READ],
                        ttl_ms=HOUR_MS)
    record = store.show(made.record.key_id)
    assert record.owner == "acme"
    assert record.scopes == {"listen", "usage:read"}
    assert record.created_at_ms == clock.now_ms
    assert record.expires_at_ms == clock.now_ms + HOUR_MS
    assert record.state(clock.now_ms) is KeyState.ACTIVE
    assert record.state(clock.now_ms + HOUR_MS) is KeyState.EXPIRED
    assert [r.key_id for r in store.owned("acme")] == [record.key_id]
    assert store.owned("nobody") == []


@pytest.mark.parametrize("scopes", [["listen", "admin"], []])
def test_unknown_or_no_scopes_are_refused(store: KeyStore,
                                          scopes: list[str]) -> None:
    with pytest.raises(ValueError, match="scopes must be some of"):
        store.create("acme", scopes)


def test_a_rolled_key_works_until_its_overlap_ends(
    store: KeyStore, clock: ManualClock,
) -> None:
    old = store.create("acme", [Scope.LISTEN])
    new = store.roll(old.record.key_id, overlap_ms=HOUR_MS)
    verifier = KeyVerifier(store, cache_ttl_ms=0)
    assert new.record.owner == "acme"
    assert new.record.scopes == {"listen"}
    assert store.show(old.record.key_id).rolled_to == new.record.key_id
    clock.advance(HOUR_MS - 1)
    assert verifier.check(old.key).ok and verifier.check(new.key).ok
    clock.advance(1)
    assert verifier.check(old.key).reason == "API key expired"
    assert verifier.check(new.key).ok


def test_a_revoked_key_is_refused_and_cannot_be_rolled(
    store: KeyStore,
) -> None:
    made = store.create("acme")
    record = store.revoke(made.record.key_id)
    assert record.revoked_at_ms is not None
    assert KeyVerifier(store).check(made.key).reason == "API key revoked"
    with pytest.raises(ValueError, match="not active"):
        store.roll(made.record.key_id, HOUR_MS)
    with pytest.raises(UnknownKeyError):
        store.revoke("key_missing")


def test_uses_are_counted_in_batches(store: KeyStore,
                                     clock: ManualClock) -> None:
    made = store.create("acme")
    verifier = KeyVerifier(store)
    for _ in range(3):
        verdict = verifier.check(made.key)
        assert verdict.record is not None
        verifier.count_use(verdict.record)
        clock.advance(1000)
    store.record_use(verifier.take_uses())
    record = store.show(made.record.key_id)
    assert record.use_count == 3
    assert record.last_used_at_ms == clock.now_ms - 1000
    # A replica flushing an older use later does not move it back.
    store.record_use({made.record.key_id: (1, 0)})
    assert store.show(made.record.key_id).last_used_at_ms == (
        record.last_used_at_ms)
    assert verifier.take_uses() == {}


def test_a_malformed_key_never_reaches_the_database(
    store: KeyStore,
) -> None:
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    key = new_key()
    typo = key[:-1] + ("a" if key[-1] != "a" else "b")
    verdict = KeyVerifier(store).check(typo)
    assert verdict.reason.startswith("invalid API key: checksum")
    assert statements == []
    KeyVerifier(store).check(key)  # well formed: one lookup
    assert [s for s in statements if s.startswith("SELECT")] != []


def test_a_cached_verdict_spares_the_database(store: KeyStore,
                                              clock: ManualClock) -> None:
    made = store.create("acme")
    verifier = KeyVerifier(store, cache_ttl_ms=5_000)
    statements = queries(store)
    for _ in range(100):
        assert verifier.check(made.key).ok
    assert len(statements) == 1
    clock.advance(5_001)
    assert verifier.check(made.key).ok
    assert len(statements) == 2


def test_a_roll_never_lengthens_a_keys_life(store: KeyStore,
                                            clock: ManualClock) -> None:
    made = store.create("acme", ttl_ms=HOUR_MS)
    store.roll(made.record.key_id, overlap_ms=2 * HOUR_MS)
    old = store.show(made.record.key_id)
    assert old.expires_at_ms == made.record.expires_at_ms  # not 2 h on
