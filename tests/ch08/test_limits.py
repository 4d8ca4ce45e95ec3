"""Tier limits: the bucket's arithmetic, slots and grants.

Most tests here run the in-process limiter. Those under "Either
limiter" run on both: the in-process one, whose two "replicas" are the
same limiter, and two Redis replicas sharing one Redis. The tests of
Redis's limiter alone are in test_limits_redis.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from ch08_metering.accounts import Customer, Tier
from ch08_metering.limits import (
    DEFAULT_GRANT_S,
    Decision,
    GrantingLimiter,
    LocalLimiter,
    TokenBucket,
    build_limiter,
    refused,
)
from ch08_metering.limits_redis import RedisLimiter
from tests.ch08.conftest import REDIS_URL, SharedRedis
from tests.ch08.limiter_cases import T0, customer


def full(capacity: float = 60.0) -> TokenBucket:
    return TokenBucket(capacity, capacity, T0)


# The bucket: a capacity of 60 refills 1 token per second.

def test_bucket_refills_evenly_and_stops_at_capacity() -> None:
    empty = TokenBucket(60.0, 0.0, T0)
    assert empty.refilled(T0 + 2.5).tokens == 2.5
    assert empty.refilled(T0 + 59.0).tokens == 59.0
    assert empty.refilled(T0 + 600.0).tokens == 60.0


def test_a_clock_that_steps_back_refills_nothing() -> None:
    bucket = TokenBucket(60.0, 10.0, T0)
    earlier = bucket.refilled(T0 - 30.0)
    assert earlier == bucket
    assert earlier.refilled(T0 + 1.0).tokens == 11.0


def test_take_within_tokens_leaves_the_rest() -> None:
    bucket, retry_after_s = full().take(45.0, T0)
    assert (bucket.tokens, retry_after_s) == (15.0, 0.0)


def test_refusal_says_exactly_when_the_tokens_are_there() -> None:
    bucket = TokenBucket(60.0, 1.0, T0)
    untaken, retry_after_s = bucket.take(3.0, T0)
    assert untaken.tokens == 1.0
    assert retry_after_s == 2.0
    taken, retry_after_s = untaken.take(3.0, T0 + 2.0)
    assert (taken.tokens, retry_after_s) == (0.0, 0.0)


def test_more_than_the_capacity_never_fits() -> None:
    bucket, retry_after_s = full().take(60.5, T0)
    assert bucket == full()
    assert retry_after_s == math.inf


def test_fractional_frames_add_up() -> None:
    bucket = full(capacity=1.2)  # refills 0.02 s of audio per second
    for _ in range(50):  # 1 s of 20 ms frames
        bucket, retry_after_s = bucket.take(0.02, T0)
        assert retry_after_s == 0.0
    assert bucket.tokens == pytest.approx(0.2)
    _, retry_after_s = bucket.take(0.3, T0)
    assert retry_after_s == pytest.approx(5.0)  # 0.1 s at 0.02 per s


def test_given_back_stops_at_capacity() -> None:
    assert TokenBucket(60.0, 59.5, T0).given_back(1.0).tokens == 60.0


# The in-process limiter.

async def test_a_tier_without_streams_is_told_not_to_retry() -> None:
    none = Tier("suspended", 0, 120)
    decision = await LocalLimiter().open_stream(customer(tier=none), "s",
                                                T0)
    assert decision == Decision(
        False, "tier suspended: 0 concurrent streams; retrying will not"
        " help", math.inf)


async def test_audio_cap_with_exact_retry_after() -> None:
    limiter = LocalLimiter()
    alice = customer()
    assert (await limiter.open_stream(alice, "s", T0)).allowed
    for _ in range(480):  # 120 s of 250 ms frames
        assert (await limiter.take_audio(alice, "s", 0.25, T0)).allowed
    refused = await limiter.take_audio(alice, "s", 0.25, T0)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.125)  # 2 s per s
    assert refused.reason == (
        "tier free: 120 audio s per minute; retry in 0.2 s")
    later = T0 + refused.retry_after_s
    assert (await limiter.take_audio(alice, "s", 0.25, later)).allowed


async def test_a_frame_larger_than_the_budget_never_fits() -> None:
    tiny = Tier("tiny", 1, 0.5)
    limiter = LocalLimiter()
    bob = customer(tier=tiny)
    assert (await limiter.open_stream(bob, "s", T0)).allowed
    # The stream holds 0.5 s already; 1.25 s would take 0.75 more.
    refused = await limiter.take_audio(bob, "s", 1.25, T0)
    assert refused == Decision(
        False, "tier tiny: 0.5 audio s per minute; retrying will not help",
        math.inf)


async def test_customers_have_limits_of_their_own() -> None:
    limiter = LocalLimiter()
    alice, bob = customer("alice"), customer("bob")
    for stream in ("a1", "a2"):
        assert (await limiter.open_stream(alice, stream, T0)).allowed
    assert not (await limiter.open_stream(alice, "a3", T0)).allowed
    assert (await limiter.open_stream(bob, "b1", T0)).allowed
    for _ in range(119):
        assert (await limiter.take_audio(alice, "a1", 1.0, T0)).allowed
    assert not (await limiter.take_audio(alice, "a1", 1.0, T0)).allowed
    assert (await limiter.take_audio(bob, "b1", 1.0, T0)).allowed


async def test_every_reason_fits_a_websocket_close_frame() -> None:
    limiter = LocalLimiter()
    big = customer(tier=Tier("enterprise", 0, 60_000))
    decisions = [await limiter.open_stream(big, "s", T0)]
    alice = customer()
    await limiter.open_stream(alice, "s", T0)
    decisions.append(await limiter.take_audio(alice, "s", 500.0, T0))
    decisions.append(await limiter.take_audio(alice, "s", 100.0, T0))
    decisions.append(await limiter.take_audio(alice, "s", 100.0, T0))
    assert [d.allowed for d in decisions] == [False, False, True, False]
    assert all(len(d.reason.encode()) < 100 for d in decisions)


async def test_take_audio_needs_an_open_stream() -> None:
    with pytest.raises(KeyError):
        await LocalLimiter().take_audio(customer(), "never-opened", 0.1, T0)


class CountingLimiter(LocalLimiter):
    """Counts the trips to the shared state."""

    def __init__(self, grant_s: float) -> None:
        super().__init__(grant_s)
        self.reservations: list[tuple[float, float]] = []

    async def reserve(
        self, customer: Customer, stream_id: str, need: float,
        want: float, now: float,
    ) -> tuple[Decision, float]:
        self.reservations.append((need, want))
        return await super().reserve(customer, stream_id, need, want, now)


async def test_a_stream_reserves_a_grant_per_second_not_per_frame() -> None:
    limiter = CountingLimiter(grant_s=1.0)
    alice = customer()
    assert (await limiter.open_stream(alice, "s", T0)).allowed
    for frame in range(125):  # 2.5 s of 20 ms frames
        now = T0 + frame * 0.02
        assert (await limiter.take_audio(alice, "s", 0.02, now)).allowed
    # One grant to open with, then one as each second runs out.
    assert len(limiter.reservations) == 3
    assert limiter.reservations[0] == (1.0, 1.0)


async def test_open_needs_a_grant_of_audio() -> None:
    limiter = LocalLimiter(grant_s=1.0)
    alice = customer()
    assert (await limiter.open_stream(alice, "a", T0)).allowed
    assert (await limiter.take_audio(alice, "a", 119.5, T0)).allowed
    refused = await limiter.open_stream(alice, "b", T0)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.5)  # 1 s missing
    assert (await limiter.open_stream(alice, "b", T0 + 0.5)).allowed


# Either limiter.

@dataclass(frozen=True)
class Limits:
    """Where the limits are kept, as the tests below see it."""

    replicas: Callable[..., tuple[GrantingLimiter, GrantingLimiter]]
    urls: tuple[str | None, ...]  # build_limiter makes `kind` of these
    kind: type[GrantingLimiter]


@pytest.fixture(params=["local", "redis"])
def limits(request: pytest.FixtureRequest) -> Limits:
    if request.param == "local":
        def same_limiter(grant_s: float = DEFAULT_GRANT_S,
                         ) -> tuple[LocalLimiter, LocalLimiter]:
            limiter = LocalLimiter(grant_s)
            return limiter, limiter

        return Limits(same_limiter, (None, ""), LocalLimiter)
    # Skipped, or failed in CI, where Redis is not running.
    shared: SharedRedis = request.getfixturevalue("shared")

    def two_replicas(grant_s: float = DEFAULT_GRANT_S,
                     ) -> tuple[RedisLimiter, RedisLimiter]:
        return (shared.replica(grant_s=grant_s),
                shared.replica(grant_s=grant_s))

    return Limits(two_replicas, (REDIS_URL,), RedisLimiter)


async def test_concurrency_cap_and_release(limits: Limits) -> None:
    one, two = limits.replicas()
    alice = customer()
    assert (await one.open_stream(alice, "s1", T0)).allowed
    assert (await two.open_stream(alice, "s2", T0)).allowed
    third = await one.open_stream(alice, "s3", T0)
    assert third == Decision(
        False, "tier free: 2 concurrent streams; retry in 1.0 s", 1.0)
    await two.close_stream(alice, "s2")
    await two.close_stream(alice, "s2")  # twice is harmless
    assert (await one.open_stream(alice, "s3", T0)).allowed


async def test_unused_grant_goes_back_to_the_bucket(limits: Limits) -> None:
    two_s = Tier("two", 5, 2.0)
    one, two = limits.replicas(grant_s=1.0)
    alice = customer(tier=two_s)
    assert (await one.open_stream(alice, "a", T0)).allowed
    assert (await one.take_audio(alice, "a", 0.25, T0)).allowed
    await one.close_stream(alice, "a")  # 0.75 s reserved, unused
    assert (await two.open_stream(alice, "b", T0)).allowed
    assert (await two.take_audio(alice, "b", 1.75, T0)).allowed
    assert not (await two.take_audio(alice, "b", 0.01, T0)).allowed


async def test_the_url_says_where_the_limits_are_kept(
    limits: Limits,
) -> None:
    for url in limits.urls:
        limiter = build_limiter(url)
        try:
            assert isinstance(limiter, limits.kind)
        finally:
            await limiter.aclose()


@pytest.mark.parametrize(("wait_s", "said"), [
    (0.004, "retry in 0.1 s"),  # never "0.0 s": that invites a hammer
    (0.1, "retry in 0.1 s"),
    (0.1001, "retry in 0.2 s"),
    (7.5, "retry in 7.5 s"),
])
def test_the_retry_wait_is_rounded_up_to_a_tenth(wait_s: float,
                                                  said: str) -> None:
    decision = refused("tier free: 120 audio s per minute", wait_s)
    assert decision.reason.endswith(f"; {said}")
    assert decision.retry_after_s == wait_s
