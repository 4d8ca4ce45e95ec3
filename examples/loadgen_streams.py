"""One stream of a load run, over WebSocket or gRPC, and how it ended.

Chapter 6, "Handling multiple concurrent streams". A stream paces its
plan's chunks in real time (or `speed` times faster), then closes as
its wire asks (Deepgram's `CloseStream`, AssemblyAI's `Terminate`, a
gRPC half-close) and waits at most `drain_s` for its last finals.
Results are timed by chapter 4's `ResultTimer`, so they become chapter
11's records as a single file's do. A stream refused at admission (HTTP
503 or 429 before the upgrade, RESOURCE_EXHAUSTED or UNAVAILABLE
before any result) is `rejected`, with the service's retry hint; one
that breaks once admitted is `failed`. Per chunk the sender only
sleeps, sends a chunk every stream shares, and counts it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar
from urllib.parse import urlencode

import grpc
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ch04_streaming.client import (
    AudioClock,
    ClientDialect,
    Heard,
    Report,
    Result,
    ResultTimer,
)
from ch05_protocols.speech.v1.speech_pb2 import (
    StreamingRecognizeRequest,
    StreamingRecognizeResponse,
)
from ch05_protocols.speech.v1.speech_pb2_grpc import SpeechStub
from examples.loadgen_workload import Plan
from examples.stream_grpc import config_request

OPEN_TIMEOUT_S = 10.0  # connect, handshake and admission
CLOSE_TIMEOUT_S = 2.0  # our own close handshake, when we close
REFUSED_STATUSES = (429, 503)
REFUSED_CODES = (grpc.StatusCode.RESOURCE_EXHAUSTED,
                 grpc.StatusCode.UNAVAILABLE)
RETRY_HINT = re.compile(r"retry in (\d+(?:\.\d+)?) ?s")
# Chapter 11's stream records carry a WebSocket close code. A stream
# refused before it began gets 1013, "Try Again Later" (RFC 6455's
# registry); a gRPC call's ending is put in the same terms.
REFUSED_CLOSE = 1013
GRPC_CLOSES = {grpc.StatusCode.OK: 1000, grpc.StatusCode.UNAVAILABLE: 1001}
UNEXPECTED_CLOSE = 1011
NO_CLOSE_FRAME = 1006

Status = Literal["completed", "rejected", "failed"]
T = TypeVar("T")


@dataclass
class Ending:
    """How one stream ended; its report holds what it heard."""

    status: Status = "completed"
    close_code: int = 1000
    reason: str = ""
    retry_after_s: float | None = None
    drain_timed_out: bool = False  # closed by us: finals still owed
    admitted: bool = True  # false if refused, or never connected


@dataclass
class StreamRun:
    plan: Plan
    report: Report
    ending: Ending = field(default_factory=Ending)
    started_at: float = 0.0  # wall clock (time.time)
    ended_at: float = 0.0


@dataclass(frozen=True)
class Pacing:
    speed: float = 1.0  # 1: real time; 4: four times faster
    drain_s: float = 5.0  # after the last chunk, for the last finals

    @property
    def realtime(self) -> bool:
        return self.speed == 1.0


async def send_plan(plan: Plan, report: Report, pacing: Pacing,
                    send: Callable[[T], Awaitable[object]],
                    lap: Sequence[T]) -> None:
    """The plan's chunks at the pace asked, each as its item of `lap`
    (the lap's chunks, or requests built once from them)."""
    clock = report.audio_clock
    loop = asyncio.get_running_loop()
    chunk_s = plan.lap.chunk_s
    step_s = chunk_s / pacing.speed
    size = len(lap)
    clock.origin = start = loop.time()
    for k in range(plan.chunks):
        delay = start + (k + 1) * step_s - loop.time()
        if delay > 0:  # a microphone has a chunk once it is over
            await asyncio.sleep(delay)
        await send(lap[(plan.start + k) % size])
        if not clock.paced:  # timed from sending: date every chunk
            clock.record((k + 1) * chunk_s, loop.time())
        report.chunks_sent += 1


def sending_bound_s(plan: Plan, pacing: Pacing) -> float:
    """How long sending may take before the stream counts as stalled."""
    return OPEN_TIMEOUT_S + plan.chunks * plan.lap.chunk_s / pacing.speed


def new_report(pacing: Pacing) -> Report:
    return Report(audio_clock=AudioClock(paced=pacing.realtime))


async def bounded(task: asyncio.Task[None], timeout_s: float) -> bool:
    """Wait for `task` at most `timeout_s`; whether it finished."""
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    return bool(done)


async def stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def retry_hint(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


async def websocket_stream(
    url: str, dialect: ClientDialect, key: str, plan: Plan, pacing: Pacing,
    on_result: Callable[[Result], None] | None = None,
) -> StreamRun:
    """One stream of `plan` to a chapter 4 dialect at `url`."""
    run = StreamRun(plan, new_report(pacing), started_at=time.time())
    query = urlencode(dialect.query(plan.lap.audio))
    try:
        socket = await connect(
            f"{url}{dialect.path}?{query}",
            additional_headers=dialect.headers(key),
            open_timeout=OPEN_TIMEOUT_S, close_timeout=CLOSE_TIMEOUT_S,
            compression=None, ping_interval=None, max_size=2**22)
    except InvalidStatus as refused:
        status = refused.response.status_code
        run.ending = Ending(
            "rejected" if status in REFUSED_STATUSES else "failed",
            REFUSED_CLOSE if status in REFUSED_STATUSES
            else UNEXPECTED_CLOSE, f"HTTP {status}",
            retry_hint(refused.response.headers.get("Retry-After")),
            admitted=False)
    except (OSError, TimeoutError) as error:
        run.ending = Ending("failed", NO_CLOSE_FRAME,
                            f"connect: {type(error).__name__}",
                            admitted=False)
    else:
        await converse(socket, dialect, run, pacing, on_result)
    run.ended_at = time.time()
    return run


async def converse(socket: ClientConnection, dialect: ClientDialect,
                   run: StreamRun, pacing: Pacing,
                   on_result: Callable[[Result], None] | None) -> None:
    timer = ResultTimer(dialect, run.report, on_result)
    loop = asyncio.get_running_loop()

    async def receive() -> None:
        try:
            async for raw in socket:
                timer.message(raw, loop.time())
        except ConnectionClosed:
            pass

    receiver = asyncio.create_task(receive())
    sender = asyncio.create_task(send_plan(
        run.plan, run.report, pacing, socket.send, run.plan.lap.chunks))
    ending = run.ending
    try:
        await asyncio.wait({sender, receiver},
                           timeout=sending_bound_s(run.plan, pacing),
                           return_when=asyncio.FIRST_COMPLETED)
        if sent_all(sender):
            await socket.send(dialect.close_message)
            if not await bounded(receiver, pacing.drain_s):
                ending.drain_timed_out = True
                await socket.close()
        else:  # the server ended it, sending broke, or it stalled
            ending.status = "failed"
    except ConnectionClosed:
        ending.status = "failed"
    finally:
        await stop(sender, receiver)
        await socket.close()
    code = socket.close_code
    ending.close_code = NO_CLOSE_FRAME if code is None else code
    if ending.status == "failed":
        ending.reason = (f"closed {ending.close_code}"
                         f" {socket.close_reason or ''}").rstrip()
    run.report.close_code = socket.close_code
    run.report.close_reason = socket.close_reason or ""


def grpc_heard(response: StreamingRecognizeResponse) -> list[Heard]:
    """A response's results, as chapter 4's client hears any wire."""
    heard = []
    for result in response.results:
        best = result.alternatives[0]
        words = best.words
        heard.append(Heard(
            best.transcript, result.is_final,
            words[0].start_time.ToTimedelta().total_seconds()
            if words else None,
            words[-1].end_time.ToTimedelta().total_seconds()
            if words else None,
            result.result_start_time.ToTimedelta().total_seconds()))
    return heard


GrpcCall = grpc.aio.StreamStreamCall[StreamingRecognizeRequest,
                                     StreamingRecognizeResponse]


async def grpc_stream(
    channel: grpc.aio.Channel, key: str, plan: Plan,
    requests: tuple[StreamingRecognizeRequest, ...], pacing: Pacing,
    on_result: Callable[[Result], None] | None = None,
) -> StreamRun:
    """One `StreamingRecognize` call of `plan` on `channel`.

    `requests` holds one request per chunk of the plan's lap, built once
    for every stream that loops it.
    """
    run = StreamRun(plan, new_report(pacing), started_at=time.time())
    call: GrpcCall = SpeechStub(channel).StreamingRecognize(
        metadata=(("authorization", f"Bearer {key}"),))
    timer = ResultTimer(NO_DIALECT, run.report, on_result)
    loop = asyncio.get_running_loop()

    async def receive() -> None:
        try:
            while isinstance(response := await call.read(),
                             StreamingRecognizeResponse):
                run.report.messages_received += 1
                for heard in grpc_heard(response):
                    timer.heard(heard, loop.time())
        except grpc.aio.AioRpcError:
            pass  # the call's status says how it ended

    async def send_all() -> None:
        await call.write(config_request(plan.lap.audio))
        await send_plan(plan, run.report, pacing, call.write, requests)
        await call.done_writing()

    receiver = asyncio.create_task(receive())
    sender = asyncio.create_task(send_all())
    try:
        await asyncio.wait({sender, receiver},
                           timeout=sending_bound_s(plan, pacing),
                           return_when=asyncio.FIRST_COMPLETED)
        if sent_all(sender):
            run.ending.drain_timed_out = not await bounded(
                receiver, pacing.drain_s)
        elif sender.done():  # a write failed: the status is on its way
            await bounded(receiver, CLOSE_TIMEOUT_S)
        elif not receiver.done():
            run.ending = Ending("failed", UNEXPECTED_CLOSE, "stalled")
    finally:
        await stop(sender, receiver)
        call.cancel()
    if run.ending.status == "completed" and not run.ending.drain_timed_out:
        await grpc_ending(call, run)
    run.ended_at = time.time()
    return run


def sent_all(sender: asyncio.Task[None]) -> bool:
    return (sender.done() and not sender.cancelled()
            and sender.exception() is None)


async def grpc_ending(call: GrpcCall, run: StreamRun) -> None:
    """The call's status, as an ending: OK, refused, or failed."""
    code, details = await call.code(), await call.details() or ""
    if code == grpc.StatusCode.OK:
        return
    hint = RETRY_HINT.search(details)
    if (code in REFUSED_CODES and run.report.messages_received == 0
            and not details.startswith("failed to connect")):
        run.ending = Ending("rejected", REFUSED_CLOSE,
                            f"{code.name}: {details}",
                            None if hint is None else float(hint.group(1)),
                            admitted=False)
        return
    run.ending = Ending(
        "failed", GRPC_CLOSES.get(code, UNEXPECTED_CLOSE),
        f"{code.name}: {details}",
        admitted=not details.startswith("failed to connect"))


class NoDialect:
    """gRPC results arrive as `Heard` already: no JSON to read."""

    path = ""
    close_message = ""
    min_chunk_ms = 0

    def query(self, audio: object) -> dict[str, str]:
        return {}

    def headers(self, key: str) -> dict[str, str]:
        return {}

    def heard(self, message: object) -> Heard | None:
        return None


NO_DIALECT: ClientDialect = NoDialect()
