"""Server-Sent Events done right: keep-alives, disconnects, errors.

Chapter 7, "Streaming response design". A transcription streams its
segments as they are decoded. The generator here sends each as an SSE
frame in the style the client asked for (`stream_styles.py`); sends a
comment when nothing happened for a while, so proxies and load
balancers do not cut an idle stream; watches for the client going away
and then cancels the inference at once, rather than at the next write;
and sends a failure as a JSON `error` object, which OpenAI's SDKs raise.
A request answered at once is watched the same way while it waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request

from ch07_api.api_metrics import ApiMetrics
from ch07_api.errors import ApiError, InternalError
from ch07_api.stream_styles import StreamStyle
from ch07_api.transcriber import OnSegment, Segment, Transcript

log = logging.getLogger("ch07_api")

SSE_HEADERS = {"Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}  # nginx: do not buffer this

Transcribe = Callable[[OnSegment], Awaitable[Transcript]]
Item = Segment | Transcript | ApiError
T = TypeVar("T")


async def produce(transcribe: Transcribe,
                  queue: asyncio.Queue[Item]) -> None:
    """Run the transcription; put each segment, then the end, on
    `queue` (an unexpected fault is logged, and sent as one)."""
    try:
        queue.put_nowait(await transcribe(queue.put_nowait))
    except ApiError as error:
        queue.put_nowait(error)
    except Exception:
        log.exception("event=stream_failed")
        queue.put_nowait(InternalError("the transcription failed"))


async def client_gone(request: Request, metrics: ApiMetrics) -> None:
    """Return when the client disconnects (its body is read already,
    so the next message the server gets is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    metrics.client_gone.inc()


class ClientGoneError(Exception):
    """The client left before its answer was ready."""


async def unless_client_gone(work: Awaitable[T], request: Request,
                             metrics: ApiMetrics) -> T:
    """Await `work` for a request that is answered at once; if its
    client leaves first, cancel it: a synchronous request's inference
    is as orphaned as a stream's."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(client_gone(request, metrics))
    try:
        await asyncio.wait({task, gone},
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        log.info("event=client_gone cancelled=inference")
        raise ClientGoneError("the client left")
    return task.result()


# --8<-- [start:sse_generator]
async def sse_stream(transcribe: Transcribe, style: StreamStyle,
                     client_gone: Callable[[], Awaitable[None]],
                     keepalive_s: float) -> AsyncIterator[str]:
    """SSE frames of one transcription, until it ends or the client
    leaves; either way nothing of it is left running."""
    queue: asyncio.Queue[Item] = asyncio.Queue()
    work = asyncio.create_task(produce(transcribe, queue))
    gone = asyncio.ensure_future(client_gone())
    try:
        for frame in style.opening():
            yield frame
        while True:
            item = asyncio.ensure_future(queue.get())
            await asyncio.wait({item, gone}, timeout=keepalive_s,
                               return_when=asyncio.FIRST_COMPLETED)
            if gone.done():
                item.cancel()
                log.info("event=client_gone cancelled=inference")
                return
            if not item.done():
                item.cancel()
                yield ": keep-alive\n\n"  # idle, not dead
                continue
            result = item.result()
            if isinstance(result, Segment):
                yield style.segment(result)
            else:
                yield (style.failure(result)
                       if isinstance(result, ApiError)
                       else style.closing(result))
                return
    finally:
        work.cancel()  # a no-op if it finished; else the client left
        gone.cancel()
        await asyncio.gather(work, gone, return_exceptions=True)
# --8<-- [end:sse_generator]
