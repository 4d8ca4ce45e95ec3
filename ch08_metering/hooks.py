"""Metering and tier limits, plugged into chapter 4's stream lifecycle.

Chapter 8, "Rate limiting tied to billing tiers" and "Metering
architecture". Chapter 4's server calls these hooks and knows nothing
else of billing. At the upgrade the API key is resolved to a customer
and the tier's concurrency limit is checked (HTTP 429 with Retry-After
when over it); every frame is metered and charged against the tier's
audio-seconds-per-minute bucket (close 4029 when it runs dry); at the
end the last usage event is cut and the stream's slot is released.
When the limits cannot be checked, the limiter lets streams go on
unlimited, and they are metered all the same.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from ch04_streaming.stream_hooks import (
    Refusal,
    StreamStart,
    StreamTracker,
)
from ch08_metering.accounts import Accounts, Customer
from ch08_metering.events import Feature, UsageEvent
from ch08_metering.limits import Limiter
from ch08_metering.metering import StreamMeter

Deliver = Callable[[UsageEvent], Awaitable[None]]


def billed_features(query: Mapping[str, str]) -> tuple[Feature, ...]:
    """Add-ons the client asked for, in Deepgram's query names."""
    features: list[Feature] = []
    if query.get("redact"):
        features.append("pii_redaction")
    if query.get("diarize", "").lower() in ("true", "1"):
        features.append("diarization")
    if query.get("summarize", "").lower() not in ("", "false", "0"):
        features.append("summarization")
    return tuple(features)


@dataclass
class MeteredStream:
    """One stream: its meter, its customer's limits."""

    customer: Customer
    meter: StreamMeter  # knows the stream's id
    limiter: Limiter
    deliver: Deliver
    clock: Callable[[], float]

    async def audio(self, seconds: float) -> str | None:
        now = self.clock()
        event = self.meter.add(seconds, now)  # received audio is billed
        if event is not None:
            await self.deliver(event)
        decision = await self.limiter.take_audio(
            self.customer, self.meter.stream_id, seconds, now)
        return None if decision.allowed else decision.reason

    async def ended(self) -> None:
        event = self.meter.cut(self.clock())
        if event is not None:
            await self.deliver(event)
        await self.limiter.close_stream(self.customer, self.meter.stream_id)


@dataclass
class MeteringHooks:
    accounts: Accounts
    limiter: Limiter
    deliver: Deliver
    interval_s: float = 60.0
    clock: Callable[[], float] = field(default=time.time)

    async def admit(self, start: StreamStart) -> StreamTracker | Refusal:
        customer = self.accounts.customer_for_key(start.api_key)
        if customer is None:  # usage that could not be billed
            return Refusal(403, "no billing account for this API key")
        now = self.clock()
        decision = await self.limiter.open_stream(customer, start.stream_id,
                                                  now)
        if not decision.allowed:
            retry = decision.retry_after_s
            return Refusal(429, decision.reason,
                           retry if math.isfinite(retry) else None)
        meter = StreamMeter(start.stream_id, customer.id,
                            billed_features(start.query), now,
                            self.interval_s)
        return MeteredStream(customer, meter, self.limiter, self.deliver,
                             self.clock)
