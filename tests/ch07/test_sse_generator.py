"""The SSE generator on its own: a client that leaves ends the stream and
the work behind it, whatever server runs it; a failure ends a typed
stream with a typed `error` event.

Servers differ in how they tell an app that its client left (Starlette
cancels the generator under ASGI 2.3, and relies on it noticing under
2.4); the generator watches for the disconnect itself, and that is what
is driven here, with futures a test resolves.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from ch07_api.errors import QueueFullError
from ch07_api.sse import sse_stream
from ch07_api.stream_styles import ResponsesStyle, TranscriptStyle
from ch07_api.transcriber import OnSegment, Transcript

BOUND_S = 10.0


async def test_a_client_gone_stops_the_stream_and_cancels_its_work(
) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def transcribe(on_segment: OnSegment) -> Transcript:
        started.set()
        try:
            await asyncio.Event().wait()  # never ends by itself
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    frames = sse_stream(transcribe, TranscriptStyle(), lambda: gone, 60.0)
    async with asyncio.timeout(BOUND_S):
        first = asyncio.ensure_future(anext(frames))
        await started.wait()
        gone.set_result(None)
        with pytest.raises(StopAsyncIteration):  # no frame, just the end
            await first
        await cancelled.wait()


async def test_a_typed_stream_ends_with_a_typed_error() -> None:
    async def transcribe(on_segment: OnSegment) -> Transcript:
        raise QueueFullError("full")

    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    frames = [frame async for frame in sse_stream(
        transcribe, ResponsesStyle("mock-asr-2026-01"), lambda: gone,
        60.0)]
    assert gone.cancelled()
    events = [json.loads(f.split("data: ", 1)[1]) for f in frames]
    assert [e["type"] for e in events] == ["response.created", "error"]
    assert events[-1] == {"type": "error", "sequence_number": 1,
                          "code": "queue_full", "message": "full",
                          "param": None}
