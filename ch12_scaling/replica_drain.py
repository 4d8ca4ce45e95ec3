"""A replica's drain: no new streams, finals delivered, then reconnect.

Chapter 12, "Cost optimization: spot and preemptible instances", and
"Cold starts during auto-scaling". A spot replica gets a notice (AWS:
two minutes, GCP: 30 seconds) and then it is gone, streams and all.
The drain spends the notice well: at once the replica reports itself
draining, so routers stop placing streams on it, and its own admission
answers 503 with `Retry-After` to any that still arrive; streams that
end by themselves before the deadline end as usual; what is left when
only the closing reserve remains is closed as chapter 4 closes a
server's streams (open utterances finished and their finals sent,
then 1001 "server shutting down"), and the client reconnects, landing
on another replica. A drained replica reports itself unhealthy, so
Serve replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ch04_streaming.server import SpeechServer
from ch12_scaling.preemption import DRAIN_MARGIN_S, MAX_DRAIN_S

log = logging.getLogger("ch12_scaling")

CLOSE_RESERVE_S = DRAIN_MARGIN_S  # to finish utterances and close


# --8<-- [start:preemption_drain]
@dataclass
class ReplicaDrain:
    speech: SpeechServer  # chapter 4's server inside the replica
    stop_pipeline: Callable[[], Awaitable[None]]  # finals, then 1001
    close_reserve_s: float = CLOSE_RESERVE_S
    draining: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    async def drain(self, seconds_left: float) -> None:
        """Spend `seconds_left` (the notice) letting streams end by
        themselves, keeping the reserve to close the rest cleanly."""
        if self.draining:
            await self.drained.wait()  # one drain, however often asked
            return
        self.draining = True  # routers read it in the next report
        self.speech.draining = True  # a late arrival: 503, Retry-After
        patience = max(0.0, min(seconds_left, MAX_DRAIN_S)
                       - self.close_reserve_s)
        log.info("event=draining streams=%d patience_s=%.0f",
                 len(self.speech.handlers), patience)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(patience):
                await self.speech.no_streams()
        await self.stop_pipeline()  # the rest: finals, then 1001
        self.drained.set()
# --8<-- [end:preemption_drain]
