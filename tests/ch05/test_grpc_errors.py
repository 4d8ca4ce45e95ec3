"""Every way a gRPC call can go wrong ends it with its documented status
and a clear message, and leaves the other streams alone.

Each test that breaks a call runs a good stream beside it and checks the
good one's reference transcript still comes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.stream_hooks import Refusal
from ch05_protocols.settings import GrpcSettings
from ch05_protocols.speech.v1.speech_pb2 import (
    RecognitionConfig,
    StreamingConfig,
    StreamingRecognizeRequest,
)
from tests.ch04.harness import reference
from tests.ch05.grpc_harness import (
    TIMEOUT_S,
    BlockingScheduler,
    Running,
    WatchedHooks,
    audio_requests,
    ending,
    finals,
    fixture_audio,
    nothing_yet,
    responses_of,
    responses_until_failed,
    serving,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
FOX = "quick_brown_fox"


async def good_stream(running: Running) -> str:
    requests = audio_requests(fixture_audio(FOX))
    return finals(await responses_of(running.call(iter(requests))))


Outcome = tuple[grpc.StatusCode, str]


async def beside_a_good_stream(
    running: Running, bad: Callable[[], Awaitable[Outcome]],
) -> Outcome:
    """Run `bad` while a good stream runs; the good one must not mind."""
    outcome, heard = await asyncio.gather(bad(), good_stream(running))
    assert heard == reference(FOX)
    return outcome


def config(**fields: Any) -> StreamingRecognizeRequest:
    """A config request: 16 kHz linear16 unless `fields` say otherwise."""
    recognition = RecognitionConfig(encoding=RecognitionConfig.LINEAR16,
                                    sample_rate_hertz=16_000)
    for name, value in fields.items():
        setattr(recognition, name, value)
    return StreamingRecognizeRequest(streaming_config=StreamingConfig(
        config=recognition))


AUDIO = StreamingRecognizeRequest(audio_content=b"\0\0" * 1600)


@pytest.mark.parametrize(("requests", "message"), [
    ([AUDIO], "the first request must hold streaming_config"),
    ([config(), AUDIO, config()], "streaming_config may be sent once"),
    ([], "the stream ended before its streaming_config"),
    ([config(), StreamingRecognizeRequest()], "neither streaming_config"),
    ([StreamingRecognizeRequest(streaming_config=StreamingConfig())],
     "streaming_config.config is missing"),
    ([config(encoding=RecognitionConfig.FLAC)],
     "encoding FLAC is not supported: use LINEAR16, MULAW, FLOAT32"),
    ([config(encoding=99)], "encoding 99 is not supported"),
    ([config(encoding=RecognitionConfig.ENCODING_UNSPECIFIED)],
     "encoding ENCODING_UNSPECIFIED is not supported"),
    ([config(sample_rate_hertz=44_100)],
     "sample_rate_hertz 44100 is not supported"),
    ([config(language_code="fr-FR")], "language_code 'fr-FR'"),
    ([config(audio_channel_count=2)], "only mono audio"),
    ([config(), StreamingRecognizeRequest(audio_content=b"\0" * 25_601)],
     "audio_content of 25601 bytes; at most 25600 per request"),
    ([config(), StreamingRecognizeRequest(audio_content=b"\0" * 3)],
     "invalid audio: linear16 frame of 3 bytes"),
    ([config(), StreamingRecognizeRequest(audio_content=b"OggS" * 8)],
     "invalid audio: ogg container"),
], ids=["audio-first", "second-config", "no-config", "empty-request",
        "config-without-config", "flac", "unknown-encoding",
        "unspecified-encoding", "rate", "language", "stereo",
        "over-25-kb", "odd-bytes", "container"])
async def test_bad_requests_are_invalid_argument(
    lexicon: Lexicon, requests: list[StreamingRecognizeRequest],
    message: str,
) -> None:
    async with serving(lexicon) as running:
        async def bad() -> Outcome:
            return await ending(running.call(iter(requests)))

        code, details = await beside_a_good_stream(running, bad)
    assert code == INVALID
    assert message in details


async def test_audio_of_exactly_25_kb_is_accepted(lexicon: Lexicon) -> None:
    limit = StreamingRecognizeRequest(audio_content=b"\0" * 25_600)
    async with serving(lexicon) as running:
        call = running.call(iter([config(), limit]))
        await responses_of(call)
        assert await call.code() == grpc.StatusCode.OK


async def test_malformed_protobuf_bytes_are_invalid_argument(
    lexicon: Lexicon,
) -> None:
    async with serving(lexicon) as running:
        async def bad() -> Outcome:
            return await ending(running.raw_call([b"\xff\xff\xff\xff"]))

        code, details = await beside_a_good_stream(running, bad)
    assert code == INVALID
    assert details == ("a message of 4 bytes is not a"
                       " speech.v1.StreamingRecognizeRequest")


async def test_a_message_far_over_the_limit_is_refused_by_grpc(
    lexicon: Lexicon,
) -> None:
    huge = StreamingRecognizeRequest(audio_content=b"\0" * 200_000)
    async with serving(lexicon) as running:
        code, _ = await ending(running.call(iter([config(), huge])))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


async def held_open(first: list[StreamingRecognizeRequest],
                    release: asyncio.Event,
                    ) -> AsyncIterator[StreamingRecognizeRequest]:
    """Send `first`, then nothing until `release` is set."""
    for request in first:
        yield request
    await release.wait()


async def test_a_stream_past_its_longest_duration_is_out_of_range(
    lexicon: Lexicon,
) -> None:
    settings = GrpcSettings(max_stream_s=0.3, shutdown_grace_s=2.0)
    release = asyncio.Event()
    async with serving(lexicon, settings) as running:
        call = running.call(held_open([config()], release))
        [billed] = await responses_until_failed(call)  # no audio, 0 s billed
        code, details = await ending(call)
        release.set()
    assert billed.total_billed_time.ToTimedelta().total_seconds() == 0
    assert code == grpc.StatusCode.OUT_OF_RANGE
    assert details == ("Exceeded maximum allowed stream duration of 0.3"
                       " seconds")


async def test_audio_that_stops_arriving_is_out_of_range_after_finals(
    lexicon: Lexicon,
) -> None:
    settings = GrpcSettings(audio_timeout_s=0.3, shutdown_grace_s=2.0)
    release = asyncio.Event()
    requests = audio_requests(fixture_audio(FOX))
    async with serving(lexicon, settings) as running:
        call = running.call(held_open(requests, release))
        responses = await responses_until_failed(call)
        code, details = await ending(call)
        release.set()
    assert code == grpc.StatusCode.OUT_OF_RANGE
    assert details.startswith("Audio Timeout Error: no audio for 0.3 s")
    # The audio sent before the pause was heard and billed.
    assert finals(responses) == reference(FOX)
    assert responses[-1].HasField("total_billed_time")


async def test_over_the_stream_cap_is_resource_exhausted(
    lexicon: Lexicon,
) -> None:
    hooks = WatchedHooks()
    release = asyncio.Event()
    settings = GrpcSettings(max_streams=1, shutdown_grace_s=2.0)
    async with serving(lexicon, settings, hooks=hooks) as running:
        first = running.call(held_open([config()], release))
        await hooks.started.get()
        code, details = await ending(running.call(iter([config()])))
        first.cancel()
        await hooks.ended.get()
        after = await responses_of(running.call(iter([config()])))
        release.set()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == "at capacity: 1 streams; retry in 1 s"
    assert len(after) == 1  # the billed duration: the slot was free


async def test_a_client_that_cancels_frees_its_stream_at_once(
    lexicon: Lexicon,
) -> None:
    hooks = WatchedHooks()
    scheduler = BlockingScheduler()
    release = asyncio.Event()
    async with serving(lexicon, hooks=hooks,
                       scheduler=scheduler) as running:
        requests = audio_requests(fixture_audio(FOX))
        call = running.call(held_open(requests, release))
        await scheduler.started.wait()  # inference is under way
        call.cancel()
        assert await call.code() == grpc.StatusCode.CANCELLED
        await hooks.ended.get()
        await scheduler.cancelled.wait()  # and was stopped with it
        assert running.built.server.speech.gate.streams == 0
        release.set()


async def test_a_refusal_of_the_hooks_becomes_its_status(
    lexicon: Lexicon,
) -> None:
    hooks = WatchedHooks(refusal=Refusal(429, "tier free: 2 streams"))
    async with serving(lexicon, hooks=hooks) as running:
        code, details = await ending(running.call(iter([config()])))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == "tier free: 2 streams"


async def test_a_usage_limit_hit_mid_stream_ends_the_call(
    lexicon: Lexicon,
) -> None:
    hooks = WatchedHooks(stop_reason="tier free: 2 audio s per minute")
    async with serving(lexicon, hooks=hooks) as running:
        code, details = await ending(running.call(iter([config(), AUDIO])))
        await hooks.ended.get()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == "usage limit: tier free: 2 audio s per minute"


async def test_no_stream_is_served_before_the_model_is_ready(
    lexicon: Lexicon,
) -> None:
    async with serving(lexicon, ready=False) as running:
        code, details = await ending(running.call(iter([config()])))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details == "model loading: retry in 1 s"


async def test_an_expired_deadline_gets_no_inference(
    lexicon: Lexicon,
) -> None:
    async with serving(lexicon) as running:
        # Writing nothing: a client still writing when its call ends
        # may hear INTERNAL instead (a grpc-python client matter).
        expired = running.call(nothing_yet(), timeout=0.0)
        code, _ = await ending(expired)
        assert running.counter.decodes == 0
        heard = await good_stream(running)  # a call with time to run
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert heard == reference(FOX)


async def test_a_deadline_mid_stream_cancels_the_inference(
    lexicon: Lexicon,
) -> None:
    scheduler = BlockingScheduler()
    release = asyncio.Event()
    async with serving(lexicon, scheduler=scheduler) as running:
        requests = audio_requests(fixture_audio(FOX))
        call = running.call(held_open(requests, release), timeout=0.5)
        await scheduler.started.wait()
        code, _ = await ending(call)
        async with asyncio.timeout(TIMEOUT_S):
            await scheduler.cancelled.wait()
        release.set()
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
