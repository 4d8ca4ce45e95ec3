"""The mock's matcher in a worker process: CPU work off the event loop.

Chapter 4, "Inference". The matcher is Python code that spends real
CPU. On the event loop it delays every stream's I/O while it runs; on a
thread it is no better, because it holds the interpreter lock the loop
needs (measured: the loop's lag grew). So the service runs it where a
real model runs, in another process, with its own interpreter and core.
As in a model server's sequence batching, the worker keeps each
utterance's state under a key the stream holds, forgets it at the final,
and evicts utterances idle longer than `idle_s` (their streams are
gone); a worker that dies is replaced, and only its in-flight calls fail.
What the worker holds is a parameter, so a later chapter can put a
batched matcher there without this one knowing it.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import signal
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ch03_gpu.phases import mark
from ch04_streaming.engine import (
    DecodeRequest,
    UtteranceDecoder,
    load_lexicon,
)
from ch04_streaming.mock_matcher import Lexicon, Matcher, RecognizedWord

Job = tuple[int, np.ndarray, bool]  # utterance key, audio, final


class WorkerLike(Protocol):
    """What the worker process holds: utterances' state, by key."""

    def advance(self, jobs: Sequence[Job], now: float
                ) -> list[list[RecognizedWord]]:
        """Feed each job's audio to its utterance; the words heard."""
        ...


# Makes a worker's state from the lexicon and `idle_s`; module-level,
# so the spawned worker process can unpickle it.
WorkerFactory = Callable[[Lexicon, float], WorkerLike]


@dataclass
class WorkerState:
    """What the worker process holds: the lexicon and live matchers."""

    lexicon: Lexicon
    idle_s: float
    matchers: OrderedDict[int, tuple[Matcher, float]] = field(
        default_factory=OrderedDict)

    def advance(self, jobs: Sequence[Job], now: float
                ) -> list[list[RecognizedWord]]:
        heard = []
        for key, audio, final in jobs:
            kept = self.matchers.pop(key) if key in self.matchers else None
            matcher = kept[0] if kept else self.lexicon.new_matcher()
            matcher.feed(audio)
            heard.append(matcher.words(final=final))
            if not final:
                self.matchers[key] = (matcher, now)  # most recent last
        while self.matchers:
            _, (_, used) = next(iter(self.matchers.items()))
            if now - used < self.idle_s:
                break
            self.matchers.popitem(last=False)
        return heard


_state: WorkerLike | None = None  # set in the worker process only


def _load(manifest: str, idle_s: float, cache_dir: str | None,
          state: WorkerFactory = WorkerState) -> None:
    global _state
    mark("matcher_up")
    # Ctrl-C reaches the whole process group; the service decides when
    # its worker stops, after the drain that still needs it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cache = Path(cache_dir) if cache_dir else None
    _state = state(load_lexicon(Path(manifest), cache), idle_s)
    mark("lexicon_loaded")


def _advance(jobs: Sequence[Job]) -> list[list[RecognizedWord]]:
    assert _state is not None, "worker not initialised"
    return _state.advance(jobs, time.monotonic())


@dataclass
class MatcherProcess:
    """`Matching` in one worker process. A round trip to it costs more
    than a stream's own matching, so every job that arrives while one
    trip is out goes on the next, together: one trip serves all."""

    manifest: Path
    idle_s: float = 60.0
    cache_dir: Path | None = None  # the lexicon's load cache, if any
    state: WorkerFactory = WorkerState  # what the worker holds
    _pool: ProcessPoolExecutor | None = field(default=None, init=False)
    _keys: itertools.count[int] = field(
        default_factory=lambda: itertools.count(1), init=False)
    _waiting: list[tuple[Job, asyncio.Future[list[RecognizedWord]]]] = (
        field(default_factory=list, init=False))
    _trips: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self) -> None:
        """Start the worker and wait until its lexicon is loaded."""
        await self._trip([])

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return UtteranceDecoder(start_s, key=next(self._keys))

    async def match(self, batch: Sequence[DecodeRequest]
                    ) -> list[list[RecognizedWord]]:
        loop = asyncio.get_running_loop()
        futures = []
        for request in batch:
            future: asyncio.Future[list[RecognizedWord]] = (
                loop.create_future())
            job = (request.decoder.key, request.audio, request.final)
            self._waiting.append((job, future))
            futures.append(future)
        if self._trips is None or self._trips.done():
            self._trips = asyncio.create_task(self._run_trips())
        return list(await asyncio.gather(*futures))

    async def _run_trips(self) -> None:
        while self._waiting:
            taken, self._waiting = self._waiting, []
            try:
                heard = await self._trip([job for job, _ in taken])
            except Exception as error:  # every job of the trip fails
                for _, future in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), words in zip(taken, heard, strict=True):
                if not future.done():
                    future.set_result(words)

    async def _trip(self, jobs: list[Job]) -> list[list[RecognizedWord]]:
        pool = self._pool or self._start_pool()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, _advance, jobs)
        except BrokenProcessPool:
            self._pool = None  # the next trip starts a fresh worker
            raise

    def _start_pool(self) -> ProcessPoolExecutor:
        # spawn: a fresh interpreter, not a fork of a running event loop.
        self._pool = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_load,
            initargs=(str(self.manifest), self.idle_s,
                      str(self.cache_dir) if self.cache_dir else None,
                      self.state))
        return self._pool

    async def stop(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, cancel_futures=True)
