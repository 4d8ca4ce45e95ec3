"""A pre-forked warm pool: pay the cold start once, fork ready workers.

Chapter 3, "Cold start mitigation". Snapshot and restore (CRIU, GPU
memory snapshots) save a process after its expensive start and start
copies of it from that image. `os.fork` is the same idea on one
machine: a parent imports and loads once, then forks workers that
inherit all of it, copy-on-write. The pool keeps `spares` forked
workers warm and parked beside the one that serves; when the serving
worker dies, a parked spare takes over the listening socket they all
inherited, and the parent forks a new spare. The parent never runs an
event loop or a thread, which cannot cross a fork: each worker makes
its own after it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ch03_gpu.phases import mark

log = logging.getLogger(__name__)

T = TypeVar("T")

WARM = b"W"  # worker -> pool: prepared, parked, ready to serve
GO = b"G"  # pool -> worker: serve now
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class Handoff:
    """A forked worker's side of the pool: the inherited listener, and
    a channel to the parent that says when to start serving on it."""

    listener: socket.socket
    channel: socket.socket
    _watch: asyncio.Task[None] | None = field(default=None, init=False)

    # --8<-- [start:warm_pool_handoff]
    async def park(self) -> bool:
        """Say "warm", then wait: True when the pool hands this worker
        the listener, False on SIGTERM or when the pool is gone."""
        loop = asyncio.get_running_loop()
        self.channel.setblocking(False)
        await loop.sock_sendall(self.channel, WARM)
        mark("parked")
        stop = asyncio.Event()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop.set)
        told = asyncio.ensure_future(loop.sock_recv(self.channel, 1))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({told, stopped},
                           return_when=asyncio.FIRST_COMPLETED)
        for waiter in (told, stopped):
            waiter.cancel()
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        go = told.done() and told.result() == GO
        if go:
            mark("activated")
            # A worker whose pool is gone would serve on unsupervised.
            self._watch = asyncio.create_task(self._stop_with_pool())
        return go
    # --8<-- [end:warm_pool_handoff]

    async def _stop_with_pool(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_recv(self.channel, 1)  # b"" once the pool exits
        os.kill(os.getpid(), signal.SIGTERM)  # drain as on any SIGTERM


@dataclass
class Child:
    pid: int
    channel: socket.socket  # the parent's end
    warm: bool = False
    serving: bool = False


@dataclass
class WarmPool(Generic[T]):
    """`prepare()` once in this process; `work(prepared, handoff)` in
    each forked worker, which parks in `handoff.park()` until it serves.
    `run` returns when SIGTERM or Ctrl-C has stopped every worker."""

    prepare: Callable[[], T]
    work: Callable[[T, Handoff], int]
    spares: int = 1
    host: str = "127.0.0.1"
    port: int = 0
    stop_timeout_s: float = 15.0
    # Workers that die before they are warm are a bug, not bad luck:
    # after this many in a row the pool stops rather than fork forever.
    max_early_deaths: int = 3
    _children: dict[int, Child] = field(default_factory=dict, init=False)
    _early_deaths: int = field(default=0, init=False)
    _stopping: bool = field(default=False, init=False)

    def run(self) -> int:
        if self.spares < 1:
            raise ValueError("a warm pool keeps at least one spare")
        prepared = self.prepare()
        mark("prepared")
        # Out of the collector's sight: its passes write to every object
        # they visit, which would copy each inherited page into every
        # worker that the fork had shared.
        gc.freeze()
        listener = socket.create_server((self.host, self.port))
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous = signal.set_wakeup_fd(wake_w)
        handled = (signal.SIGCHLD, *STOP_SIGNALS)
        saved = {s: signal.signal(s, lambda *_: None) for s in handled}
        try:
            return self._supervise(prepared, listener, wake_r,
                                   (wake_r, wake_w))
        finally:
            signal.set_wakeup_fd(previous)
            for signum, handler in saved.items():
                signal.signal(signum, handler)
            for fd in (wake_r, wake_w):
                os.close(fd)
            listener.close()

    def _supervise(self, prepared: T, listener: socket.socket,
                   wake_r: int, fds: tuple[int, ...]) -> int:
        while True:
            self._top_up(prepared, listener, fds)
            channels = [c.channel.fileno() for c in self._children.values()]
            readable, _, _ = select.select([wake_r, *channels], [], [], 1.0)
            signals = set()
            with suppress(BlockingIOError):
                signals = set(os.read(wake_r, 64))
            if signals & set(STOP_SIGNALS):
                return self._stop()
            for child in list(self._children.values()):
                if child.channel.fileno() in readable:
                    self._heard(child)
            self._reap()
            if self._early_deaths >= self.max_early_deaths:
                log.error("event=warm_pool_failing early_deaths=%d",
                          self._early_deaths)
                self._stop()
                return 1
            self._hand_over()

    def _top_up(self, prepared: T, listener: socket.socket,
                fds: tuple[int, ...]) -> None:
        spares = [c for c in self._children.values() if not c.serving]
        for _ in range(self.spares - len(spares)):
            self._fork(prepared, listener, fds)

    def _fork(self, prepared: T, listener: socket.socket,
              fds: tuple[int, ...]) -> None:
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            ours.close()
            self._become_worker(prepared, Handoff(listener, theirs), fds)
        theirs.close()
        # Its own process group: its matcher and other helpers go with
        # it when the pool cleans up after it.
        with suppress(OSError):
            os.setpgid(pid, pid)
        self._children[pid] = Child(pid, ours)
        log.info("event=warm_pool_forked pid=%d", pid)

    def _become_worker(self, prepared: T, handoff: Handoff,
                       fds: tuple[int, ...]) -> None:
        """The forked child: shed the parent's supervision, then work."""
        code = 1
        try:
            with suppress(OSError):
                os.setpgid(0, 0)
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, *STOP_SIGNALS):
                signal.signal(signum, signal.SIG_DFL)
            for fd in fds:
                os.close(fd)
            for child in self._children.values():
                child.channel.close()
            self._children.clear()
            code = self.work(prepared, handoff)
        except BaseException:
            log.exception("event=warm_pool_worker_failed")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # never back into the parent's loop

    def _heard(self, child: Child) -> None:
        try:
            said = child.channel.recv(16)
        except OSError:
            said = b""
        if WARM in said:
            child.warm = True
            self._early_deaths = 0

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self._children.pop(pid, None)
            if child is None:
                continue
            child.channel.close()
            with suppress(OSError):
                os.killpg(pid, signal.SIGKILL)  # what it left running
            if self._stopping:
                log.info("event=warm_pool_worker_stopped pid=%d", pid)
                continue
            if not child.warm:
                self._early_deaths += 1
            log.warning("event=warm_pool_worker_lost pid=%d serving=%s"
                        " status=%d", pid, child.serving, status)

    def _hand_over(self) -> None:
        if any(c.serving for c in self._children.values()):
            return
        for child in self._children.values():
            if child.warm:
                try:
                    child.channel.sendall(GO)
                except OSError:
                    continue  # it is dying; the next reap sees it
                child.serving = True
                log.info("event=warm_pool_handed_over pid=%d", child.pid)
                return

    def _stop(self) -> int:
        """SIGTERM to every worker (the serving one drains); whatever
        is still running at the deadline is killed with its group."""
        self._stopping = True
        for pid in self._children:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        while self._children and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.02)
        for pid in list(self._children):
            with suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self._children.pop(pid).channel.close()
        return 0
