"""Revocation reaches running streams on every replica, in one poll."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ch09_security.key_store import KeyStore
from ch09_security.key_verifier import KeyVerifier, development_record
from ch09_security.key_watch import KeyWatch, RunningStreams
from tests.ch09.conftest import ManualClock, open_store


class Replica:
    """One server's view: its own verifier, streams and watch."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self.verifier = KeyVerifier(store)
        self.streams = RunningStreams()
        self.watch = KeyWatch(self.verifier, self.streams)


@pytest.fixture
def replica(database_url: str, clock: ManualClock) -> Iterator[Replica]:
    """A second replica on the same database as `store`."""
    other = open_store(database_url, clock)
    yield Replica(other)
    other.engine.dispose()


def test_stop_is_idempotent_and_keeps_the_first_reason() -> None:
    streams = RunningStreams()
    stop = streams.add(development_record("d"))
    stop.stop("API key revoked")
    stop.stop("API key expired")
    assert stop.reason == "API key revoked"


async def test_a_key_revoked_elsewhere_ends_this_replicas_streams(
    store: KeyStore, replica: Replica,
) -> None:
    made, bystander = store.create("acme"), store.create("globex")
    records = [replica.verifier.check(k.key).record
               for k in (made, bystander)]
    assert records[0] is not None and records[1] is not None
    first, second = (replica.streams.add(records[0]) for _ in range(2))
    other = replica.streams.add(records[1])
    await replica.watch.poll()  # nothing changed yet
    store.revoke(made.record.key_id)  # on another replica
    await replica.watch.poll()
    assert [s.reason for s in (first, second)] == ["API key revoked"] * 2
    assert other.reason is None
    # The replica's cache learnt it too: no stale "active" verdict.
    assert replica.verifier.check(made.key).reason == "API key revoked"


async def test_a_rolled_keys_streams_end_when_its_overlap_runs_out(
    store: KeyStore, replica: Replica, clock: ManualClock,
) -> None:
    made = store.create("acme")
    record = replica.verifier.check(made.key).record
    assert record is not None
    stream = replica.streams.add(record)
    store.roll(made.record.key_id, overlap_ms=60_000)
    await replica.watch.poll()
    assert stream.reason is None  # the overlap runs
    clock.advance(60_000)
    await replica.watch.poll()  # no change in the database: the clock
    assert stream.reason == "API key expired"


async def test_revalidation_catches_a_change_the_polls_missed(
    store: KeyStore, replica: Replica, clock: ManualClock,
) -> None:
    made = store.create("acme")
    record = replica.verifier.check(made.key).record
    assert record is not None
    stream = replica.streams.add(record)
    await replica.watch.poll()
    # The revoking replica's clock runs behind by more than the watch
    # looks back: its change is stamped too early to be polled.
    clock.advance(-replica.watch.lookback_ms - 1)
    store.revoke(made.record.key_id)
    clock.advance(replica.watch.lookback_ms + 1)
    await replica.watch.poll()
    assert stream.reason is None
    await replica.watch.revalidate()
    assert stream.reason == "API key revoked"


async def test_development_keys_are_not_looked_up(
    store: KeyStore, replica: Replica,
) -> None:
    stream = replica.streams.add(development_record("development"))
    await replica.watch.revalidate()
    await replica.watch.poll()
    assert stream.reason is None


async def test_counted_uses_are_written_by_the_watch(
    store: KeyStore, replica: Replica,
) -> None:
    made = store.create("acme")
    record = replica.verifier.check(made.key).record
    assert record is not None
    replica.verifier.count_use(record)
    await replica.watch.flush_uses()
    assert store.show(made.record.key_id).use_count == 1


async def test_an_ended_stream_is_no_longer_followed(
    store: KeyStore, replica: Replica,
) -> None:
    made = store.create("acme")
    record = replica.verifier.check(made.key).record
    assert record is not None
    stream = replica.streams.add(record)
    replica.streams.remove(stream)
    assert len(replica.streams) == 0 and replica.streams.keys_in_use() == []


async def test_stop_ends_the_watch_after_the_poll_under_way(
    store: KeyStore, replica: Replica,
) -> None:
    replica.watch.poll_s = 0.01
    polls = 0
    real_poll = replica.watch.poll

    async def counted_poll() -> None:
        nonlocal polls
        await real_poll()
        polls += 1
        if polls == 3:
            replica.watch.stop()

    replica.watch.poll = counted_poll  # type: ignore[method-assign]
    async with asyncio.timeout(5):
        await replica.watch.run()
    assert polls == 3  # every poll begun was finished, none after stop
