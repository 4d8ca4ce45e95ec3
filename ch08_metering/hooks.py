"""Metering and tier limits, plugged into chapter 4's stream lifecycle.

Chapter 8, "Rate limiting tied to billing tiers" and "Metering
architecture". Chapter 4's server calls these hooks and knows nothing
else of billing. At the upgrade the API key is resolved to a customer
and the tier's concurrency limit is checked (HTTP 429 with Retry-After
when over it); every frame is metered and charged against the tier's
audio-seconds-per-minute bucket (close 4029 when it runs dry); at the
end the last usage event is cut and the stream's slot is released.
A stream whose channels are transcribed one by one (Deepgram's
`multichannel`) is billed, and charged to the bucket, for each
channel's audio, as Deepgram bills it: two channels of a minute are two
minutes.
An admitted stream is one API call, metered as it is admitted (a
refused one is not: it used nothing); each decode's device time is
counted as it completes and cut into `compute_ms` events with the
audio's intervals, the last at the end, after the stream's last decode.
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
    channels: int = 1  # transcribed one by one: each billed

    async def audio(self, seconds: float) -> str | None:
        now = self.clock()
        due = self.meter.due(now)
        billed = seconds * self.channels  # channel-seconds
        # Received audio is billed; compute time with the same interval.
        await self._send(self.meter.add(billed, now),
                         self.meter.cut_compute(now) if due else None)
        decision = await self.limiter.take_audio(
            self.customer, self.meter.stream_id, billed, now)
        return None if decision.allowed else decision.reason

    def compute(self, device_s: float) -> None:
        """A decode's device time (chapter 4's `DeviceTimeTracker`)."""
        self.meter.compute(device_s)

    async def ended(self) -> None:
        now = self.clock()
        await self._send(self.meter.cut(now), self.meter.cut_compute(now))
        await self.limiter.close_stream(self.customer, self.meter.stream_id)

    async def opened(self) -> MeteredStream:
        """Meter the stream's API call; the stream, to follow."""
        await self.deliver(self.meter.opened())
        return self

    async def _send(self, *events: UsageEvent | None) -> None:
        for event in events:
            if event is not None:
                await self.deliver(event)


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
        return await MeteredStream(customer, meter, self.limiter,
                                   self.deliver, self.clock,
                                   start.transcribed_channels).opened()
