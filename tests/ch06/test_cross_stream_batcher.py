"""The cross-stream batcher: one batch for many streams, finals first,
interims merged, no stream starved, one model per batch, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from ch03_gpu.batcher import BatcherFullError
from ch04_streaming.engine import DecodeRequest, UtteranceDecoder
from ch04_streaming.transcript import Hypothesis
from ch06_pipeline.cross_stream_batcher import (
    CrossStreamBatcher,
    Outcome,
    UtteranceTag,
)

TIMEOUT_S = 5.0


class Recorder:
    """A batch function that records each batch, and that holds every
    batch until `release` is set when `hold` is."""

    def __init__(self, hold: bool = False) -> None:
        self.batches: list[list[DecodeRequest]] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def __call__(self, batch: Sequence[DecodeRequest]
                       ) -> list[Outcome]:
        self.batches.append(list(batch))
        await self.release.wait()
        return [Hypothesis((), r.final) for r in batch]


def decoder(model: str = "full") -> UtteranceDecoder:
    return UtteranceDecoder(0.0, tag=UtteranceTag(model))


def request(owner: UtteranceDecoder, samples: int = 1600,
            final: bool = False) -> DecodeRequest:
    return DecodeRequest(owner, np.zeros(samples, np.float32), final)


def batcher(run: Recorder, max_batch: int = 8, max_wait_s: float = 0.0,
            max_queue: int = 64, max_interim_wait_s: float = 10.0,
            drops: list[str] | None = None) -> CrossStreamBatcher:
    return CrossStreamBatcher(run, max_batch, max_wait_s, max_queue,
                              max_interim_wait_s,
                              (drops if drops is not None else []).append)


async def first_batch_held(run: Recorder,
                           queue: CrossStreamBatcher) -> None:
    """Occupy the worker with one batch, so later requests queue up."""
    queue.submit(request(decoder()))
    async with asyncio.timeout(TIMEOUT_S):
        while not run.batches:
            await asyncio.sleep(0)


async def test_requests_of_many_streams_share_one_batch() -> None:
    run = Recorder()
    async with batcher(run, max_batch=8, max_wait_s=0.05) as queue:
        futures = [queue.submit(request(decoder())) for _ in range(8)]
        async with asyncio.timeout(TIMEOUT_S):
            await asyncio.gather(*futures)
    assert [len(b) for b in run.batches] == [8]


async def test_finals_leave_before_interims_that_came_first() -> None:
    run = Recorder(hold=True)
    async with batcher(run, max_batch=2) as queue:
        await first_batch_held(run, queue)
        interims = [request(decoder()) for _ in range(2)]
        finals = [request(decoder(), final=True) for _ in range(2)]
        futures = [queue.submit(r) for r in [*interims, *finals]]
        run.release.set()
        async with asyncio.timeout(TIMEOUT_S):
            await asyncio.gather(*futures)
    assert run.batches[1] == finals
    assert run.batches[2] == interims


async def test_a_newer_interim_joins_the_waiting_one() -> None:
    run = Recorder(hold=True)
    async with batcher(run) as queue:
        await first_batch_held(run, queue)
        owner = decoder()
        older = queue.submit(request(owner, 1600))
        newer = queue.submit(request(owner, 800))
        final = queue.submit(request(owner, 400, final=True))
        run.release.set()
        async with asyncio.timeout(TIMEOUT_S):
            results = await asyncio.gather(older, newer, final)
    [merged] = run.batches[1]
    assert merged.audio.size == 1600 + 800 + 400 and merged.final
    assert queue.coalesced == 2
    assert all(isinstance(r, Hypothesis) and r.is_final for r in results)


async def test_no_interim_starves_behind_a_stream_of_finals() -> None:
    """Finals go first, but an interim that has waited its bound goes
    before them: with one request per batch and finals always waiting,
    the interim still leaves."""
    run = Recorder(hold=True)
    async with batcher(run, max_batch=1,
                       max_interim_wait_s=0.02) as queue:
        await first_batch_held(run, queue)
        interim = request(decoder())
        queue.submit(interim)
        finals = [queue.submit(request(decoder(), final=True))
                  for _ in range(3)]
        await asyncio.sleep(0.03)  # the interim's bound passes
        run.release.set()
        async with asyncio.timeout(TIMEOUT_S):
            await asyncio.gather(*finals)
    assert run.batches[1] == [interim]


async def test_a_batch_holds_one_model_only() -> None:
    run = Recorder(hold=True)
    async with batcher(run) as queue:
        await first_batch_held(run, queue)
        full = [request(decoder("full")) for _ in range(2)]
        cheaper = [request(decoder("cheaper")) for _ in range(2)]
        futures = [queue.submit(r) for r in
                   [full[0], cheaper[0], full[1], cheaper[1]]]
        run.release.set()
        async with asyncio.timeout(TIMEOUT_S):
            await asyncio.gather(*futures)
    assert run.batches[1:] == [full, cheaper]


async def test_a_request_whose_stream_left_is_not_decoded() -> None:
    run, drops = Recorder(hold=True), list[str]()
    async with batcher(run, drops=drops) as queue:
        await first_batch_held(run, queue)
        gone, stays = request(decoder()), request(decoder())
        queue.submit(gone).cancel()  # its client vanished
        kept = queue.submit(stays)
        run.release.set()
        async with asyncio.timeout(TIMEOUT_S):
            await kept
    assert run.batches[1] == [stays]
    assert queue.abandoned == 1
    assert not queue._interims  # nothing kept for the stream that left
    assert drops == ["client_gone"]


async def test_a_full_queue_refuses_at_once() -> None:
    run = Recorder(hold=True)
    async with batcher(run, max_queue=2) as queue:
        await first_batch_held(run, queue)
        queue.submit(request(decoder()))
        queue.submit(request(decoder()))
        with pytest.raises(BatcherFullError):
            queue.submit(request(decoder()))
        run.release.set()
