"""Google's API on the chapter 5 server lives by the server's rules: one
stream cap for both APIs, the drain, chapter 4's hooks (chapter 8's
metering and limits), the configured limits and the client's deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.cloud.speech_v1.types import (
    StreamingRecognizeRequest,
    StreamingRecognizeResponse,
)

from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.stream_hooks import Refusal
from ch05_protocols.settings import GrpcSettings
from tests.ch04.harness import reference
from tests.ch05.google_harness import (
    audio_chunks,
    final_transcript,
    requests_for,
    streaming_config,
)
from tests.ch05.grpc_harness import (
    TIMEOUT_S,
    BlockingScheduler,
    Running,
    WatchedHooks,
    audio_requests,
    ending,
    finals,
    fixture_audio,
    metadata,
    nothing_yet,
    responses_until_failed,
    sent_then_held,
    serving,
)

GOOGLE = "/google.cloud.speech.v1.Speech/StreamingRecognize"
FOX = "quick_brown_fox"


def google_call(running: Running, requests: Any,
                timeout: float | None = TIMEOUT_S) -> Any:
    """A Google call on the server's channel, with Google's own types."""
    method: Any = running.channel.stream_stream(
        GOOGLE, request_serializer=StreamingRecognizeRequest.serialize,
        response_deserializer=StreamingRecognizeResponse.deserialize)
    return method(requests, metadata=metadata(), timeout=timeout)


def fox_requests() -> list[StreamingRecognizeRequest]:
    return requests_for(streaming_config(), audio_chunks(FOX))


async def held(requests: Sequence[StreamingRecognizeRequest],
               sent: asyncio.Event
               ) -> AsyncIterator[StreamingRecognizeRequest]:
    """Google's requests, then connected and quiet (see sent_then_held)."""
    for request in requests:
        yield request
    sent.set()
    await asyncio.Event().wait()


async def google_nothing_yet() -> AsyncIterator[StreamingRecognizeRequest]:
    await asyncio.Event().wait()
    yield StreamingRecognizeRequest()


async def test_one_cap_counts_streams_of_both_apis(lexicon: Lexicon) -> None:
    hooks = WatchedHooks()
    settings = GrpcSettings(max_streams=1, shutdown_grace_s=2.0)
    async with serving(lexicon, settings, hooks=hooks) as running:
        sent = asyncio.Event()
        google = google_call(running, held(fox_requests(), sent))
        await hooks.started.get()  # admitted: it holds the one slot
        ours_refused = await ending(running.call(nothing_yet()))
        google.cancel()
        await hooks.ended.get()
        ours_sent = asyncio.Event()
        ours = running.call(sent_then_held(
            audio_requests(fixture_audio(FOX)), ours_sent))
        await hooks.started.get()
        google_refused = await ending(google_call(running,
                                                  google_nothing_yet()))
        ours.cancel()
    assert ours_refused == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                            "at capacity: 1 streams; retry in 1 s")
    assert google_refused == ours_refused


async def test_the_hooks_admit_meter_and_stop_a_google_stream(
        lexicon: Lexicon) -> None:
    hooks = WatchedHooks()
    async with serving(lexicon, hooks=hooks) as running:
        whole = google_call(running, iter(fox_requests()))
        heard = final_transcript(
            [response async for response in whole])
        admitted, ended = await hooks.started.get(), await hooks.ended.get()
        hooks.stop_reason = "tier free: 2 audio s per minute"
        # One audio message: the stream stops at it, and a client still
        # writing then may hear INTERNAL (a grpc-python client matter).
        stopped = google_call(running, held(fox_requests()[:2],
                                            asyncio.Event()))
        await responses_until_failed(stopped)
        stopped_ending = await ending(stopped)
        hooks.stop_reason = None
        hooks.refusal = Refusal(429, "tier free: 2 concurrent streams")
        config_only = google_call(running, held(fox_requests()[:1],
                                                asyncio.Event()))
        refused = await ending(config_only)
    assert heard == reference(FOX)
    assert admitted == ended  # the stream the hooks followed, ended once
    assert stopped_ending == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                              "usage limit: tier free: 2 audio s per"
                              " minute")
    assert refused == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                       "tier free: 2 concurrent streams")


async def test_a_drain_finishes_and_bills_an_open_google_stream(
        lexicon: Lexicon) -> None:
    async with serving(lexicon) as running:
        server = running.built.server
        sent = asyncio.Event()
        call = google_call(running, held(fox_requests(), sent))
        await sent.wait()
        first = await anext(aiter(call))  # the stream is under way
        drain = asyncio.create_task(server.speech.gate.drain(5.0))
        rest: list[Any] = await responses_until_failed(call)
        code, details = await ending(call)
        await drain
        refused = await ending(google_call(running, google_nothing_yet()))
    heard = final_transcript([first, *rest])
    assert heard and reference(FOX).startswith(heard)
    assert "total_billed_time" in rest[-1]
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details.startswith("server shutting down")
    assert refused == (grpc.StatusCode.UNAVAILABLE,
                       "server is draining: retry in 1 s")


async def test_the_configured_audio_limit_reaches_google_streams(
        lexicon: Lexicon) -> None:
    settings = GrpcSettings(max_audio_bytes=1_000, shutdown_grace_s=2.0)
    async with serving(lexicon, settings) as running:
        sent = asyncio.Event()
        call = google_call(running, held(fox_requests()[:2], sent))
        await sent.wait()
        await responses_until_failed(call)
        code, details = await ending(call)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "Audio chunk can be of a maximum of 1000 bytes."


async def test_a_google_call_past_its_deadline_gets_no_inference(
        lexicon: Lexicon) -> None:
    async with serving(lexicon) as running:
        expired = google_call(running, google_nothing_yet(), timeout=0.0)
        code, _ = await ending(expired)
        decodes = running.counter.decodes
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert decodes == 0


async def test_a_google_deadline_mid_stream_cancels_the_inference(
        lexicon: Lexicon) -> None:
    scheduler = BlockingScheduler()
    async with serving(lexicon, scheduler=scheduler) as running:
        # All of it fits under the pending-audio cap (10 s), so the
        # client is done writing when the deadline comes.
        call = google_call(running, held(fox_requests(),
                                         asyncio.Event()), timeout=2.0)
        await scheduler.started.wait()
        code, _ = await ending(call)
        async with asyncio.timeout(TIMEOUT_S):
            await scheduler.cancelled.wait()
            await running.built.server.speech.gate.emptied()
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_client_that_cancels_leaves_the_others_served(
        lexicon: Lexicon) -> None:
    hooks = WatchedHooks()
    async with serving(lexicon, hooks=hooks) as running:
        sent = asyncio.Event()
        leaving = running.call(sent_then_held(
            audio_requests(fixture_audio(FOX)), sent))
        await sent.wait()
        staying = running.call(iter(audio_requests(fixture_audio(FOX))))
        leaving.cancel()
        heard = finals([response async for response in staying])
        staying_code = await staying.code()
        gone = {await hooks.ended.get(), await hooks.ended.get()}
        async with asyncio.timeout(TIMEOUT_S):
            await running.built.server.speech.gate.emptied()
    assert heard == reference(FOX)
    assert staying_code == grpc.StatusCode.OK
    assert len(gone) == 2
