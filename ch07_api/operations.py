"""Long-running operations: work that outlives its request (AIP-151).

Chapter 7, "Long-running operations". A request for more than half a
minute of audio is answered at once with an operation; the work runs
on in a task, on the batch tier (its own admission bounds, fed at a
bounded multiple of real time so live traffic keeps the accelerator),
and records its progress as it goes. The operation ends once: with
its transcript, with the error that stopped it, or cancelled
(CANCELLED). An operation is the client's handle, not the work: the
task is cancelled when asked, and at shutdown, when what is still
running is marked ABORTED, as it would be after a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ch04_streaming.audio import MODEL_RATE
from ch07_api.errors import (
    RPC_CODES,
    ApiError,
    FailedPreconditionError,
    NotFoundError,
    QueueFullError,
    rpc_status_of,
)
from ch07_api.model_versions import ModelVersion
from ch07_api.service import SpeechApi
from ch07_api.store import OperationRecord, OperationState, Store

log = logging.getLogger("ch07_api")

PROGRESS_EVERY_S = 0.5  # at most this often is progress written


def status(code: str, message: str) -> dict[str, object]:
    return {"code": RPC_CODES[code], "message": message}


INTERRUPTED = status(
    "ABORTED", "the server stopped while this operation ran; retry it")
CANCELLED = status("CANCELLED", "the operation was cancelled")


# --8<-- [start:long_running_operation]
@dataclass
class OperationRunner:
    api: SpeechApi
    store: Store
    max_pending: int = 64  # operations waiting or running
    clock: Callable[[], float] = time.monotonic
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def start(self, samples: np.ndarray, version: ModelVersion,
                    api_version: str, transcript_id: str, language: str,
                    trace: Mapping[str, str]) -> OperationRecord:
        """Record the operation, start its work, return at once."""
        if len(self._tasks) >= self.max_pending:
            raise QueueFullError(f"{self.max_pending} operations pending")
        record = await asyncio.to_thread(
            self.store.add_operation, version.name, api_version,
            samples.size / MODEL_RATE, transcript_id)
        self._tasks[record.id] = asyncio.create_task(self._run(
            record.id, samples, version, transcript_id, language, trace))
        return record

    async def _run(self, operation_id: str, samples: np.ndarray,
                   version: ModelVersion, transcript_id: str,
                   language: str, trace: Mapping[str, str]) -> None:
        progress = Progress(self.store, operation_id, self.clock)
        try:  # on the batch tier, fed at a bounded speed
            transcript = await self.api.transcribe(
                samples, version, speed=self.api.settings.lro_speed,
                on_progress=progress.report, batch=True, headers=trace)
            await asyncio.to_thread(self.store.add_transcript,
                                    transcript_id, version.name,
                                    language, transcript)
            await asyncio.to_thread(self.store.finish, operation_id,
                                    transcript.duration_s)
            self.api.metrics.operations.labels("succeeded").inc()
        except ApiError as error:
            await self._end(operation_id, OperationState.FAILED,
                            rpc_status_of(error), "failed")
        finally:
            self._tasks.pop(operation_id, None)
# --8<-- [end:long_running_operation]

    async def _stop(self, task: asyncio.Task[None], operation_id: str,
                    state: OperationState, error: dict[str, object],
                    outcome: str) -> None:
        """Cancel an operation's work, then end it with `error`."""
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await self._end(operation_id, state, error, outcome)

    async def _end(self, operation_id: str, state: OperationState,
                   error: dict[str, object], outcome: str) -> None:
        await asyncio.to_thread(self.store.fail, operation_id, state,
                                error)
        self.api.metrics.operations.labels(outcome).inc()

    async def cancel(self, operation_id: str) -> OperationRecord:
        """AIP-151's `:cancel`: stop the work; the operation ends
        CANCELLED. One that has ended already cannot be cancelled."""
        record = await self.get(operation_id)
        task = self._tasks.get(operation_id)
        if record.done or task is None:
            raise FailedPreconditionError(
                f"operations/{operation_id} is done already"
                f" ({record.state.value.lower()}); nothing to cancel")
        await self._stop(task, operation_id, OperationState.CANCELLED,
                         CANCELLED, "cancelled")
        return await self.get(operation_id)

    async def get(self, operation_id: str) -> OperationRecord:
        record = await asyncio.to_thread(self.store.operation,
                                         operation_id)
        if record is None:
            raise NotFoundError(f"operations/{operation_id} not found",
                                "name")
        return record

    async def delete(self, operation_id: str) -> None:
        """AIP-151's delete: forget a finished operation's record (its
        transcript stays). A running one must be cancelled first."""
        record = await self.get(operation_id)
        if not record.done:
            raise FailedPreconditionError(
                f"operations/{operation_id} is running: cancel it first")
        await asyncio.to_thread(self.store.delete_operation, operation_id)

    def recover(self) -> int:
        """At start-up: what a dead process was running has failed."""
        abandoned = self.store.abandon_running(INTERRUPTED)
        if abandoned:
            log.warning("event=operations_abandoned count=%d", abandoned)
        return abandoned

    async def shutdown(self) -> None:
        """Stop every running operation, marked as after a crash."""
        for operation_id, task in list(self._tasks.items()):
            await self._stop(task, operation_id, OperationState.FAILED,
                             INTERRUPTED, "interrupted")


@dataclass
class Progress:
    """Writes an operation's progress, at most every PROGRESS_EVERY_S."""

    store: Store
    operation_id: str
    clock: Callable[[], float]
    _last: float = float("-inf")
    _writing: asyncio.Task[None] | None = None

    def report(self, processed_audio_s: float) -> None:
        now = self.clock()
        busy = self._writing is not None and not self._writing.done()
        if busy or now - self._last < PROGRESS_EVERY_S:
            return
        self._last = now
        self._writing = asyncio.ensure_future(asyncio.to_thread(
            self.store.record_progress, self.operation_id,
            processed_audio_s))
