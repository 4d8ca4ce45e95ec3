"""Tier limits in Redis: replicas share them, and dead ones let go.

Redis comes from `REDIS_URL` (default: the local server). Each test keys
its state under a prefix of its own and deletes it afterwards. What
either limiter must do, two Redis replicas included, test_limits.py
tests on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from ch08_metering.accounts import Customer, Tier
from ch08_metering.limits_redis import SCRIPT
from tests.ch08.conftest import REDIS_URL, SharedRedis
from tests.ch08.limiter_cases import T0, customer

ALICE = customer("alice")


async def test_replicas_share_the_audio_budget(shared: SharedRedis) -> None:
    one, two = shared.replica(), shared.replica()
    assert (await one.open_stream(ALICE, "a", T0)).allowed
    assert (await two.open_stream(ALICE, "b", T0)).allowed
    sent = 0.0
    for _ in range(250):  # 250 ms frames, one stream on each replica
        for limiter, stream in ((one, "a"), (two, "b")):
            if (await limiter.take_audio(ALICE, stream, 0.25, T0)).allowed:
                sent += 0.25
    assert sent == 120.0
    refused = await two.take_audio(ALICE, "b", 0.25, T0)
    assert refused.retry_after_s == 0.125  # 0.25 s at 2 s per s
    assert refused.reason == (
        "tier free: 120 audio s per minute; retry in 0.2 s")
    assert (await two.take_audio(ALICE, "b", 0.25, T0 + 0.125)).allowed


async def test_a_dead_replicas_slots_come_free_when_leases_end(
    shared: SharedRedis,
) -> None:
    dead, alive = shared.replica(lease_s=60.0), shared.replica(lease_s=60.0)
    assert (await dead.open_stream(ALICE, "d1", T0)).allowed
    assert (await dead.open_stream(ALICE, "d2", T0)).allowed
    # `dead` never closes its streams: its replica is gone.
    assert not (await alive.open_stream(ALICE, "a1", T0 + 59.0)).allowed
    assert (await alive.open_stream(ALICE, "a1", T0 + 60.0)).allowed


async def test_a_stream_taking_audio_keeps_its_lease(
    shared: SharedRedis,
) -> None:
    one, other = shared.replica(lease_s=60.0), shared.replica(lease_s=60.0)
    for stream in ("s1", "s2"):
        assert (await one.open_stream(ALICE, stream, T0)).allowed
    # s1 renews within half a lease, though its grant is not used up.
    assert (await one.take_audio(ALICE, "s1", 0.02, T0 + 30.0)).allowed
    assert (await other.open_stream(ALICE, "o", T0 + 61.0)).allowed
    assert not (await other.open_stream(ALICE, "p", T0 + 61.0)).allowed
    assert (await other.open_stream(ALICE, "p", T0 + 90.0)).allowed


async def test_a_lapsed_stream_must_find_a_free_slot_again(
    shared: SharedRedis,
) -> None:
    one, other = shared.replica(lease_s=10.0), shared.replica(lease_s=10.0)
    solo = Customer("solo", Tier("solo", 1, 120), "cus_solo")
    assert (await one.open_stream(solo, "slow", T0)).allowed
    assert (await other.open_stream(solo, "fast", T0 + 11.0)).allowed
    refused = await one.take_audio(solo, "slow", 0.02, T0 + 12.0)
    assert refused.reason == "tier solo: 1 concurrent streams; retry in 1.0 s"


async def test_simultaneous_opens_never_exceed_the_cap(
    shared: SharedRedis,
) -> None:
    growth = Customer("carol", Tier("growth", 20, 1800), "cus_carol")
    one, two = shared.replica(), shared.replica()
    decisions = await asyncio.gather(*(
        (one if n % 2 else two).open_stream(growth, f"s{n}", T0)
        for n in range(50)
    ))
    assert sum(d.allowed for d in decisions) == 20
    _, streams = one.keys(growth)
    assert await shared.admin.zcard(streams) == 20


async def test_each_trip_is_one_evalsha(
    shared: SharedRedis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis = Redis.from_url(REDIS_URL)
    limiter = shared.replica(redis, grant_s=1.0)
    await redis.script_load(SCRIPT)  # else the first call loads it
    sent: list[str] = []
    execute: Callable[..., Awaitable[Any]] = redis.execute_command

    async def recorded(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return await execute(*args, **options)

    monkeypatch.setattr(redis, "execute_command", recorded)
    assert (await limiter.open_stream(ALICE, "s", T0)).allowed
    for _ in range(5):  # 1.25 s of audio: one more grant
        assert (await limiter.take_audio(ALICE, "s", 0.25, T0)).allowed
    await limiter.close_stream(ALICE, "s")
    assert sent == ["EVALSHA"] * 3


async def test_keys_are_prefixed_and_expire(shared: SharedRedis) -> None:
    limiter = shared.replica(lease_s=60.0)
    assert (await limiter.open_stream(ALICE, "s", T0)).allowed
    audio, streams = limiter.keys(ALICE)
    assert audio == f"{shared.prefix}:{{alice}}:audio"
    assert streams == f"{shared.prefix}:{{alice}}:streams"
    assert 0 < await shared.admin.ttl(audio) <= 61
    assert 0 < await shared.admin.ttl(streams) <= 61

