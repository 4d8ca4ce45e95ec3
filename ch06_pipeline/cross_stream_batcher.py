"""The cross-stream batcher: many streams' decode requests, one queue.

Chapter 6, "Request queuing and scheduling for streaming workloads".
Chapter 3's dynamic batcher, specialised for streams: a batch leaves
when it is full (`max_batch_size`) or when its oldest request has
waited `max_wait_s`; finals go before interims, because a final is what
a listener waits for, yet an interim that has waited `max_interim_wait_s`
goes first, so that no stream starves; a newer interim of an utterance
whose last one still waits is merged into it (its audio appended), so a
lagging queue holds at most one request per utterance. A batch holds
one model's requests only (the degraded service decodes new utterances
with a cheaper one). The queue is bounded: a full queue refuses at once
(`BatcherFullError`), and its caller decides (`pipeline_scheduler.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ch03_gpu.batcher import Batchable, BatcherClosedError, RunBatch
from ch03_gpu.dynamic_batcher import DynamicBatcher
from ch04_streaming.audio import MODEL_RATE
from ch04_streaming.engine import DecodeRequest, UtteranceDecoder
from ch04_streaming.transcript import Hypothesis

Outcome = Hypothesis | BaseException  # one per request of a batch
Item = Batchable[DecodeRequest, Outcome]


@dataclass
class UtteranceTag:
    """What the pipeline keeps with each utterance's decoder."""

    model: str  # which model decodes it, from its first request on
    span: object = None  # its trace span, when traced


def model_of(decoder: UtteranceDecoder) -> str:
    tag = decoder.tag
    return tag.model if isinstance(tag, UtteranceTag) else "full"


class CrossStreamBatcher(DynamicBatcher[DecodeRequest, Outcome]):
    def __init__(self, run_batch: RunBatch[DecodeRequest, Outcome],
                 max_batch_size: int, max_wait_s: float,
                 max_queue: int, max_interim_wait_s: float,
                 on_drop: Callable[[str], None] = lambda reason: None
                 ) -> None:
        super().__init__(run_batch, max_batch_size, max_wait_s, max_queue)
        self.max_interim_wait_s = max_interim_wait_s
        self.on_drop = on_drop  # each request merged or left, by reason
        self.coalesced = 0  # interims merged into a waiting one
        self.abandoned = 0  # requests whose stream left before a batch
        self.taken_waits: list[float] = []  # of the batch just taken
        self._interims: dict[int, Item] = {}  # by id of the decoder

    # --8<-- [start:interim_coalescing]
    def submit(self, payload: DecodeRequest) -> asyncio.Future[Outcome]:
        """Queue a request; an interim of an utterance whose previous
        request still waits joins that one instead."""
        waiting = self._interims.get(id(payload.decoder))
        if waiting is None or waiting.abandoned or self._closing:
            future = super().submit(payload)
            if not payload.final:
                self._interims[id(payload.decoder)] = self._waiting[-1]
            return future
        # One request for both: the older one's audio, then this one's;
        # a final makes it final. Both callers get its hypothesis.
        older = waiting.payload
        waiting.payload = DecodeRequest(
            older.decoder, np.concatenate((older.audio, payload.audio)),
            payload.final)
        if payload.final:
            del self._interims[id(payload.decoder)]
        self.coalesced += 1
        self.on_drop("interim_coalesced")
        return share(waiting.future)
    # --8<-- [end:interim_coalescing]

    @property
    def queued_audio_s(self) -> float:
        """Seconds of audio waiting for the device: the load a scaler
        or a router reads (chapter 12)."""
        samples = sum(len(item.payload.audio) for item in self._waiting)
        return samples / MODEL_RATE

    def _take(self, count: int) -> list[Item]:
        """Up to `count` live requests of one model: aged interims, then
        finals, then interims, each oldest first."""
        now = asyncio.get_running_loop().time()
        live = [item for item in self._waiting if not item.abandoned]
        for gone in (i for i in self._waiting if i.abandoned):
            self.abandoned += 1
            self.on_drop("client_gone")
            self._forget(gone)
        order = sorted(live, key=lambda item: self._rank(item, now))
        model = model_of(order[0].payload.decoder) if order else ""
        taken = [item for item in order
                 if model_of(item.payload.decoder) == model][:count]
        chosen = {id(item) for item in taken}
        self._waiting.clear()
        self._waiting.extend(i for i in live if id(i) not in chosen)
        for item in taken:
            self._forget(item)
        self.taken_waits = [now - item.arrived_s for item in taken]
        return taken

    def _forget(self, item: Item) -> None:
        if self._interims.get(id(item.payload.decoder)) is item:
            del self._interims[id(item.payload.decoder)]

    def _rank(self, item: Item, now: float) -> tuple[int, float]:
        aged = now - item.arrived_s >= self.max_interim_wait_s
        klass = 0 if aged else 1 if item.payload.final else 2
        return klass, item.arrived_s

    async def close(self, grace_s: float = 5.0) -> None:
        await super().close(grace_s)
        self._interims.clear()


def share(future: asyncio.Future[Outcome]) -> asyncio.Future[Outcome]:
    """A future of the same outcome, which its own caller may cancel
    without cancelling `future` for the others."""
    copy: asyncio.Future[Outcome] = (
        asyncio.get_running_loop().create_future())

    def settle(done: asyncio.Future[Outcome]) -> None:
        if copy.done():
            return
        if done.cancelled():
            copy.set_exception(BatcherClosedError("request cancelled"))
        elif (error := done.exception()) is not None:
            copy.set_exception(error)
        else:
            copy.set_result(done.result())

    future.add_done_callback(settle)
    return copy


def batch_audio_s(requests: Sequence[DecodeRequest]) -> float:
    return sum(r.audio.size for r in requests) / MODEL_RATE
