"""Rate limits tied to billing tiers: audio per minute, streams at once.

Chapter 8, "Rate limiting tied to billing tiers". A customer's tier caps
two things, shared by all of the customer's keys: the seconds of audio
it may send per minute (a token bucket that holds a minute's budget and
refills evenly) and its open streams. Audio is charged as it arrives,
frame by frame, so a stream reserves it from the bucket in grants of
about a second and spends each grant locally; only when the grant runs
out does it go back to the shared state (in Redis, a round trip), once
per second of audio instead of once per 20 ms frame. A stream opens
with its first grant, so a customer out of audio is refused before the
upgrade rather than after its first frame, and what is left of a grant
when the stream ends goes back to the bucket. Time is passed in as
`now`, never read, so the arithmetic is the same in a test, in-process
and in Redis. This module holds the interface and the in-process
limiter; limits_redis.py shares the state between replicas.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Protocol

from ch08_metering.accounts import Customer, Tier

log = logging.getLogger("ch08_metering")

DEFAULT_GRANT_S = 1.0
# A slot frees when one of the customer's streams ends, which no clock
# predicts; a refused client is told to try again after this long.
STREAM_SLOT_RETRY_S = 1.0


class LimiterUnavailableError(Exception):
    """The shared state of the limits cannot be reached (Redis down)."""


@dataclass(frozen=True)
class Decision:
    """Whether a request may go ahead; if not, why, and when to retry.

    `reason` names the tier and the limit in under 100 bytes, so it fits
    a WebSocket close frame. `retry_after_s` is `math.inf` when waiting
    cannot help.
    """

    allowed: bool
    reason: str = ""
    retry_after_s: float = 0.0


ALLOWED = Decision(True)


class Limiter(Protocol):
    """The limits of a customer's tier, checked as its streams run.

    `now` is in seconds: Unix time wherever replicas share the limits.
    Calls for one stream must not overlap; `take_audio` is for a stream
    that `open_stream` allowed and raises KeyError for any other. When
    the limits cannot be checked, streams are allowed: an outage of the
    limiter is not an outage of the service.
    """

    async def open_stream(
        self, customer: Customer, stream_id: str, now: float
    ) -> Decision: ...

    async def take_audio(
        self, customer: Customer, stream_id: str, seconds: float,
        now: float,
    ) -> Decision: ...

    async def close_stream(self, customer: Customer, stream_id: str
                           ) -> None: ...

    async def aclose(self) -> None: ...


# --8<-- [start:token_bucket]
@dataclass(frozen=True)
class TokenBucket:
    """Seconds of audio a customer may still send; a minute's worth.

    The whole capacity refills evenly over 60 s. `now` comes from the
    caller, so the bucket runs on any clock, including a test's.
    """

    capacity: float
    tokens: float
    updated_at: float

    def refilled(self, now: float) -> TokenBucket:
        elapsed = max(0.0, now - self.updated_at)  # clocks may step back
        tokens = self.tokens + elapsed * self.capacity / 60.0
        return replace(self, tokens=min(self.capacity, tokens),
                       updated_at=max(now, self.updated_at))

    def take(self, amount: float, now: float) -> tuple[TokenBucket, float]:
        """The bucket after taking `amount`, and 0.0; if there is not
        enough, the bucket untaken and the seconds until there is."""
        bucket = self.refilled(now)
        if amount <= bucket.tokens:
            return replace(bucket, tokens=bucket.tokens - amount), 0.0
        if amount > self.capacity:
            return bucket, math.inf  # more than a minute's budget
        missing = amount - bucket.tokens
        return bucket, missing * 60.0 / self.capacity
# --8<-- [end:token_bucket]

    def given_back(self, amount: float) -> TokenBucket:
        """Unused audio returned; exact without a refill first."""
        return replace(self, tokens=min(self.capacity, self.tokens + amount))


def refused(limit: str, retry_after_s: float) -> Decision:
    if math.isinf(retry_after_s):
        return Decision(False, f"{limit}; retrying will not help",
                        retry_after_s)
    # Round up: "retry in 0.0 s" would invite an immediate, futile retry.
    tenths = math.ceil(round(retry_after_s * 10, 6)) / 10
    return Decision(False, f"{limit}; retry in {tenths:.1f} s",
                    retry_after_s)


def streams_refused(tier: Tier) -> Decision:
    limit = f"tier {tier.name}: {tier.max_concurrent_streams} concurrent"
    never = tier.max_concurrent_streams == 0
    return refused(f"{limit} streams",
                   math.inf if never else STREAM_SLOT_RETRY_S)


def audio_refused(tier: Tier, retry_after_s: float) -> Decision:
    per_minute = f"{tier.audio_seconds_per_minute:g} audio s per minute"
    return refused(f"tier {tier.name}: {per_minute}", retry_after_s)


@dataclass
class Grant:
    """Audio a stream has reserved from its customer's bucket."""

    seconds: float
    renew_at: float  # back to the shared state by then, lease or not


class GrantingLimiter(ABC):
    """A Limiter that lets each stream spend grants reserved in advance.

    Subclasses keep the shared state. `reserve` holds the stream's slot
    and takes between `need` and `want` seconds from the bucket, as much
    as there is, in one atomic step; `release` frees the slot and gives
    back unused audio. Grants live in this process, with their streams.
    When `reserve` raises LimiterUnavailableError, the stream is allowed
    and goes on unlimited.
    """

    def __init__(self, grant_s: float, renew_every_s: float) -> None:
        self.grant_s = grant_s
        self.renew_every_s = renew_every_s
        self._grants: dict[tuple[str, str], Grant] = {}

    @abstractmethod
    async def reserve(
        self, customer: Customer, stream_id: str, need: float,
        want: float, now: float,
    ) -> tuple[Decision, float]:
        """The decision, and the seconds granted when allowed."""

    @abstractmethod
    async def release(self, customer: Customer, stream_id: str,
                      unused_s: float) -> None: ...

    async def open_stream(
        self, customer: Customer, stream_id: str, now: float
    ) -> Decision:
        first = min(self.grant_s, customer.tier.audio_seconds_per_minute)
        grant = Grant(0.0, now)
        decision = await self._top_up(customer, stream_id, grant,
                                      first, self.grant_s, now)
        if decision.allowed:
            self._grants[customer.id, stream_id] = grant
        return decision

    async def take_audio(
        self, customer: Customer, stream_id: str, seconds: float,
        now: float,
    ) -> Decision:
        grant = self._grants[customer.id, stream_id]
        if seconds > grant.seconds or now >= grant.renew_at:
            need = max(0.0, seconds - grant.seconds)
            want = self.grant_s + seconds - grant.seconds
            decision = await self._top_up(customer, stream_id, grant,
                                          need, want, now)
            if not decision.allowed:
                return decision
        grant.seconds -= seconds
        return ALLOWED

    async def close_stream(self, customer: Customer, stream_id: str
                           ) -> None:
        grant = self._grants.pop((customer.id, stream_id), None)
        # Never opened, closed already, or unlimited: nothing to give
        # back. With the shared state down, the stream's lease there
        # runs out by itself.
        if grant is not None and math.isfinite(grant.seconds):
            with suppress(LimiterUnavailableError):
                await self.release(customer, stream_id, grant.seconds)

    async def _top_up(
        self, customer: Customer, stream_id: str, grant: Grant,
        need: float, want: float, now: float,
    ) -> Decision:
        try:
            decision, granted = await self.reserve(customer, stream_id,
                                                   need, want, now)
        except LimiterUnavailableError as error:
            # An outage of the limits must not become an outage of the
            # service: the stream goes on unlimited, still metered.
            log.warning("event=limits_unavailable stream=%s error=%s",
                        stream_id, error)
            grant.seconds = grant.renew_at = math.inf
            return ALLOWED
        if decision.allowed:
            grant.seconds += granted
            grant.renew_at = now + self.renew_every_s
        return decision


class LocalLimiter(GrantingLimiter):
    """Limits kept in this process: right for one replica, and tests."""

    def __init__(self, grant_s: float = DEFAULT_GRANT_S) -> None:
        # No stream outlives this process, so no lease needs renewing.
        super().__init__(grant_s, renew_every_s=math.inf)
        self._buckets: dict[str, TokenBucket] = {}
        self._streams: dict[str, set[str]] = {}

    async def reserve(
        self, customer: Customer, stream_id: str, need: float,
        want: float, now: float,
    ) -> tuple[Decision, float]:
        tier = customer.tier
        streams = self._streams.setdefault(customer.id, set())
        if (stream_id not in streams
                and len(streams) >= tier.max_concurrent_streams):
            return streams_refused(tier), 0.0
        capacity = tier.audio_seconds_per_minute
        stored = self._buckets.get(customer.id)  # tier may have changed
        bucket = (TokenBucket(capacity, capacity, now) if stored is None
                  else replace(stored, capacity=capacity).refilled(now))
        amount = max(need, min(want, bucket.tokens))
        bucket, retry_after_s = bucket.take(amount, now)
        if retry_after_s > 0.0:
            return audio_refused(tier, retry_after_s), 0.0
        self._buckets[customer.id] = bucket
        streams.add(stream_id)
        return ALLOWED, amount

    async def release(self, customer: Customer, stream_id: str,
                      unused_s: float) -> None:
        self._streams.get(customer.id, set()).discard(stream_id)
        bucket = self._buckets.get(customer.id)
        if bucket is not None:
            self._buckets[customer.id] = bucket.given_back(unused_s)

    async def aclose(self) -> None:
        """Nothing to let go of: the state is this process's memory."""


def build_limiter(redis_url: str | None) -> Limiter:
    """Limits shared through Redis when there is one, else in-process."""
    if not redis_url:
        return LocalLimiter()
    # Imported only here: limits_redis builds on this module.
    from ch08_metering.limits_redis import RedisLimiter

    return RedisLimiter.from_url(redis_url)
