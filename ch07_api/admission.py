"""Admission: how many requests run inference at once, and how many wait.

Chapter 7, "Error handling for ML-specific failures" (queue full). The
model behind the API has a bounded queue (chapter 6); the API in front
of it bounds its own work the same way. At most `max_active` requests
transcribe at once and `max_waiting` more wait, each for at most
`max_wait_s`; a request past either bound is answered at once with 429
and `Retry-After`, rather than held while its client times out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from ch07_api.errors import QueueFullError


@dataclass
class Admission:
    max_active: int = 64
    max_waiting: int = 256
    max_wait_s: float = 5.0
    active: int = 0
    waiting: int = 0
    _free: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._free = asyncio.Semaphore(self.max_active)

    def refuse_if_full(self) -> None:
        """Raise `QueueFullError` now if a `slot()` would be refused
        (a stream checks before its 200 and its first event go out)."""
        if self._free.locked() and self.waiting >= self.max_waiting:
            raise QueueFullError(
                f"{self.active} requests transcribing and {self.waiting}"
                " waiting: retry shortly")

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the active places while the block runs."""
        self.refuse_if_full()
        self.waiting += 1
        try:
            async with asyncio.timeout(self.max_wait_s):
                await self._free.acquire()
        except TimeoutError:
            raise QueueFullError(
                f"no inference slot free within {self.max_wait_s:g} s:"
                " retry shortly") from None
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._free.release()
