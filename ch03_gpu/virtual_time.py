"""An asyncio event loop on virtual time: idle waits take no time.

Chapter 3, "Static vs dynamic vs continuous batching". The batching
benchmark runs the real batchers against a simulated device, whose
work is `asyncio.sleep`. On this loop the clock jumps to the next timer
whenever nothing is ready to run, so an hour of traffic takes as long
as its Python work, and two runs of one seed give the same figures.
Only for code that waits on timers: a wait on a socket or a thread
gets no virtual help.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """The loop's selector: instead of blocking until the next timer is
    due, it moves the clock there."""

    def __init__(self, jump: Callable[[float], None]) -> None:
        super().__init__()
        self._jump = jump

    def select(
        self, timeout: float | None = None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:  # no timer at all: only real I/O can come
            return super().select(timeout)
        ready = super().select(0)  # real I/O, e.g. the loop's wake-ups
        if not ready and timeout > 0:
            self._jump(timeout)
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """`time()` starts at 0 and advances only between timers."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(_JumpingSelector(self._jump))

    def time(self) -> float:
        return self._virtual_now

    def _jump(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_in_virtual_time(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on a fresh virtual-time loop."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)
