"""Metering chapter 5's gRPC streams, under the gRPC tier limits.

Chapter 8, "Metering architecture" and "Rate limiting tied to billing
tiers", on the gRPC service. `LimitInterceptor` (grpc_limits.py) finds
the customer and holds the call's stream slot; these hooks, which the
gRPC service calls as chapter 4's server does, meter the stream's audio
under that slot's id and charge it to the tier's audio budget, so a
gRPC stream is billed and limited exactly as a WebSocket one is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ch04_streaming.stream_hooks import Refusal, StreamStart, StreamTracker
from ch08_metering.grpc_limits import current_stream
from ch08_metering.hooks import Deliver, MeteredStream, billed_features
from ch08_metering.limits import Limiter
from ch08_metering.metering import StreamMeter


@dataclass
class GrpcMeteringHooks:
    limiter: Limiter
    deliver: Deliver
    interval_s: float = 60.0
    clock: Callable[[], float] = field(default=time.time)

    async def admit(self, start: StreamStart) -> StreamTracker | Refusal:
        # The interceptor admitted the call and opened its stream: the
        # customer and the stream id are the call's, not looked up again.
        stream = current_stream()
        meter = StreamMeter(stream.id, stream.customer.id,
                            billed_features(start.query), self.clock(),
                            self.interval_s)
        # Its `ended` closes the stream early; the interceptor's close
        # at the end of the call then finds nothing left to release.
        return await MeteredStream(stream.customer, meter, self.limiter,
                                   self.deliver, self.clock).opened()
