"""The client's deadline, carried into inference.

Chapter 5, "gRPC bidirectional streaming". A gRPC client sends its
deadline with the call; past it, the client has given up and any work
done for it is wasted. Each stream's decodes go through a
`DeadlineScheduler`: before a decode it asks the call how much time is
left and starts nothing once none is, and it bounds the decode by what
is left, so inference still running at the deadline is cancelled
rather than finished for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ch04_streaming.app import session_factory
from ch04_streaming.engine import DecodeRequest, UtteranceDecoder
from ch04_streaming.scheduler import DecodeScheduler
from ch04_streaming.session import EveryChunk, InterimCadence
from ch04_streaming.stream_handler import ConnectionLimits, SessionFactory
from ch04_streaming.transcript import Hypothesis


class DeadlineExpiredError(Exception):
    """The call's deadline has passed: no more inference for it."""


# --8<-- [start:deadline_propagation]
@dataclass
class DeadlineScheduler:
    """One call's decodes, each bounded by the client's deadline."""

    inner: DecodeScheduler  # shared by every stream
    time_remaining: Callable[[], float | None]  # the call's; None: none

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return self.inner.new_utterance(start_s)

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        remaining = self.time_remaining()
        if remaining is not None and remaining <= 0:
            # The client has stopped waiting: start no work for it.
            raise DeadlineExpiredError("deadline passed before a decode")
        try:
            # The deadline goes down with the work: at expiry the
            # decode is cancelled, wherever it is waiting.
            async with asyncio.timeout(remaining):
                return await self.inner.decode(request)
        except TimeoutError:
            raise DeadlineExpiredError("deadline passed in a decode") from None
# --8<-- [end:deadline_propagation]


def deadline_sessions(
    scheduler: DecodeScheduler, limits: ConnectionLimits,
    cadence: InterimCadence | None = None,
) -> Callable[[Callable[[], float | None]], SessionFactory]:
    """Given a call's `time_remaining`, chapter 4's sessions for it,
    each decoding on the shared `scheduler` under the call's deadline."""
    def for_call(time_remaining: Callable[[], float | None]
                 ) -> SessionFactory:
        return session_factory(DeadlineScheduler(scheduler, time_remaining),
                               limits, cadence or EveryChunk())
    return for_call
