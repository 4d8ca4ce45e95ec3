"""The stream guard's own refusals, and the rate's bounded memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ch04_streaming.auth import ApiKeys
from ch04_streaming.stream_hooks import Refusal, StreamStart, StreamTracker
from ch09_security import abuse_limits
from ch09_security.abuse_limits import NewStreamRate
from ch09_security.key_store import KeyStore
from ch09_security.security_layer import SecurityLayer, security_layer


@pytest.fixture
def layer(store: KeyStore) -> Iterator[SecurityLayer]:
    yield security_layer(store, ApiKeys(()))


class RefusingHooks:
    """Another chapter's hooks (chapter 8's tier limits) that refuse."""

    async def admit(self, start: StreamStart) -> StreamTracker | Refusal:
        return Refusal(429, "over the tier's streams")


async def test_a_key_revoked_during_the_upgrade_is_refused(
    layer: SecurityLayer, store: KeyStore,
) -> None:
    made = store.create("acme")
    assert layer.credentials.verify(made.key)  # chapter 4's check
    store.revoke(made.record.key_id)
    layer.credentials.keys.forget(made.record.digest)
    refused = await layer.guard.admit(StreamStart("s", made.key, {}))
    assert refused == Refusal(401, "API key revoked")
    assert len(layer.guard.streams) == 0


async def test_the_inner_hooks_refusal_stands_and_nothing_is_followed(
    layer: SecurityLayer, store: KeyStore,
) -> None:
    made = store.create("acme")
    layer.guard.inner = RefusingHooks()
    refused = await layer.guard.admit(StreamStart("s", made.key, {}))
    assert refused == Refusal(429, "over the tier's streams")
    assert len(layer.guard.streams) == 0
    assert layer.credentials.keys.take_uses() == {}  # not a use


def test_the_rate_forgets_the_least_recently_used_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(abuse_limits, "MAX_KEYS", 2)
    rate = NewStreamRate(per_minute=1.0, clock=lambda: 0.0)
    assert rate.take("a") is None and rate.take("b") is None
    assert rate.take("a") is not None  # a's bucket is empty
    assert rate.take("c") is None  # b, least recently used, goes
    assert rate.take("b") is None  # a full bucket again
    assert rate.take("a") is None  # and so was a's, pushed out by b
