"""Abuse limits on the way in: the page a stream comes from, and how
fast a key opens streams.

Chapter 9, "Rate limiting and abuse prevention for inference
endpoints". Chapter 4's server caps what is open (streams per server,
per key and per client address, handshakes in progress per address,
the time a request may take to arrive, the size of a frame); this adds
what needs the credential's owner, checked by the `StreamGuard` once
the key or token is known: the `Origin` allowlist (`origins.py`) and a
rate of new streams per key. The rate is chapter 8's token bucket, one
per key in this process (N replicas allow N times it): a key may open
`per_minute` streams at once, then one more every 60/`per_minute`
seconds, so a client that reconnects in a loop, or a storm of
handshakes, is refused 429 with `Retry-After` after its burst, while
its open streams and every other key go on.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ch04_streaming.stream_hooks import Refusal, StreamStart
from ch08_metering.limits import TokenBucket, refused
from ch09_security.origins import OriginAllowlist

NEW_STREAMS_PER_MINUTE = 60.0  # a key's whole share of streams at once
MAX_KEYS = 10_000  # buckets kept; the least recently used go first


# --8<-- [start:abuse_limits]
@dataclass
class AbuseLimits:
    origins: OriginAllowlist
    new_streams: NewStreamRate

    def check(self, start: StreamStart, key_id: str) -> Refusal | None:
        return (self.origins.check(start.headers.get("origin"))
                or self.new_streams.take(key_id))


@dataclass
class NewStreamRate:
    per_minute: float = NEW_STREAMS_PER_MINUTE  # also the burst
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[str, TokenBucket] = field(
        default_factory=OrderedDict, init=False)

    def take(self, key_id: str) -> Refusal | None:
        now = self.clock()
        full = TokenBucket(self.per_minute, self.per_minute, now)
        bucket, wait_s = self._buckets.pop(key_id, full).take(1.0, now)
        self._buckets[key_id] = bucket  # the most recently used last
        if len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)
        if wait_s == 0.0:
            return None
        limit = f"{self.per_minute:g} new streams a minute per key"
        return Refusal(429, refused(limit, wait_s).reason, wait_s)
# --8<-- [end:abuse_limits]

    def __post_init__(self) -> None:
        if not 1 <= self.per_minute < math.inf:  # else none could open
            raise ValueError("new streams per minute: at least 1")


def no_browsers() -> AbuseLimits:
    """Programs only (no `Origin`), at the default rate."""
    return AbuseLimits(OriginAllowlist(), NewStreamRate())
