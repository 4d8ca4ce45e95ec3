"""Tier limits shared by every replica, kept in Redis by one Lua script.

Chapter 8, "Rate limiting tied to billing tiers". A customer's streams
land on any replica, so its bucket and its open streams live in Redis
and change only inside limits.lua, which checks the stream slot and
takes the audio in one atomic step: two replicas cannot both take the
last slot or the last second. Streams reserve audio in grants (see
limits.py), one round trip per second of audio, not per frame. A stream
holds its slot by a lease, renewed by each trip and at least every half
lease; when a replica dies, its streams' slots come free as their leases
run out instead of never. `now` comes from the caller rather than from
Redis's clock, so tests steer time and the arithmetic is the local
limiter's; the price is trusting the replicas' clocks, which must be
Unix time kept by NTP. A replica whose clock runs ahead refills buckets
and ends leases early by its lead, so a lease is tens of seconds, far
above any skew. Keys are `speechlimits:{customer}:audio|streams`, with
TTLs, so an idle customer leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ch08_metering.accounts import Customer
from ch08_metering.limits import (
    ALLOWED,
    DEFAULT_GRANT_S,
    Decision,
    GrantingLimiter,
    LimiterUnavailableError,
    audio_refused,
    streams_refused,
)

SCRIPT = Path(__file__).with_name("limits.lua").read_text()
DEFAULT_PREFIX = "speechlimits"
DEFAULT_LEASE_S = 60.0


class RedisLimiter(GrantingLimiter):
    """Limits that every replica connected to one Redis shares."""

    def __init__(
        self, redis: Redis, *, prefix: str = DEFAULT_PREFIX,
        lease_s: float = DEFAULT_LEASE_S, grant_s: float = DEFAULT_GRANT_S,
    ) -> None:
        super().__init__(grant_s, renew_every_s=lease_s / 2)
        self.prefix = prefix
        self.lease_s = lease_s
        self._redis = redis
        self._script = redis.register_script(SCRIPT)

    @classmethod
    def from_url(cls, redis_url: str, timeout_s: float = 0.5
                 ) -> RedisLimiter:
        # A stream must never wait long on its limits: a slow Redis is
        # treated as a down one.
        return cls(Redis.from_url(redis_url, socket_timeout=timeout_s,
                                  socket_connect_timeout=timeout_s))

    def keys(self, customer: Customer) -> list[str]:
        # The {hash tag} puts a customer's keys on one Redis Cluster
        # node, as the keys of one script call must be.
        base = f"{self.prefix}:{{{customer.id}}}"
        return [f"{base}:audio", f"{base}:streams"]

    async def reserve(
        self, customer: Customer, stream_id: str, need: float,
        want: float, now: float,
    ) -> tuple[Decision, float]:
        tier = customer.tier
        reply = await self._run(
            self.keys(customer),
            ["reserve", stream_id, tier.audio_seconds_per_minute,
             need, want, now, tier.max_concurrent_streams, self.lease_s],
        )
        outcome, number = (part.decode() for part in reply)
        if outcome == "streams":
            return streams_refused(tier), 0.0
        if outcome == "audio":
            return audio_refused(tier, float(number)), 0.0
        return ALLOWED, float(number)

    async def release(self, customer: Customer, stream_id: str,
                      unused_s: float) -> None:
        capacity = customer.tier.audio_seconds_per_minute
        await self._run(self.keys(customer),
                        ["release", stream_id, capacity, unused_s])

    async def _run(self, keys: list[str],
                   args: list[str | float]) -> Any:
        try:
            return await self._script(keys=keys, args=args)
        except (RedisError, OSError) as error:
            raise LimiterUnavailableError(str(error)) from error

    async def aclose(self) -> None:
        await self._redis.aclose()

