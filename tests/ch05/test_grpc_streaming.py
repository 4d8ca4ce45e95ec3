"""The gRPC service streams the fixtures and answers in protobuf.

A real grpc.aio server in this process on a free port, with the mock
engine: the reference transcripts come back, in order, with word times,
interim stability, speech events and the billed duration.
"""

from __future__ import annotations

import math

import grpc
import pytest

from ch04_streaming.mock_matcher import Lexicon
from ch05_protocols.grpc_results import billed_seconds, stability
from ch05_protocols.speech.v1.speech_pb2 import (
    SPEECH_ACTIVITY_BEGIN,
    SPEECH_ACTIVITY_END,
    StreamingRecognizeRequest,
)
from examples.stream_grpc import Pace, recognize
from tests.ch04.harness import MANIFEST, reference
from tests.ch05.grpc_harness import (
    KEY,
    audio_requests,
    finals,
    fixture_audio,
    responses_of,
    serving,
)


@pytest.mark.parametrize("fixture_id", [
    "quick_brown_fox", "quick_brown_fox_8k_mulaw"])
async def test_the_reference_transcript_comes_back(
    lexicon: Lexicon, fixture_id: str,
) -> None:
    audio = fixture_audio(fixture_id)
    async with serving(lexicon) as running:
        responses = await responses_of(running.call(
            iter(audio_requests(audio))))
    assert finals(responses) == reference(fixture_id)
    last = responses[-1]
    assert not last.results  # the last message bills, nothing more
    duration_s = MANIFEST.get(fixture_id).duration_s
    billed = last.total_billed_time.ToTimedelta().total_seconds()
    assert billed == math.ceil(duration_s)


async def test_results_carry_word_times_stability_and_confidence(
    lexicon: Lexicon,
) -> None:
    audio = fixture_audio("quick_brown_fox")
    async with serving(lexicon) as running:
        responses = await responses_of(running.call(
            iter(audio_requests(audio))))
    results = [r for response in responses for r in response.results]
    interims = [r for r in results if not r.is_final]
    [final] = [r for r in results if r.is_final]
    assert interims, "interim results were asked for"
    assert all(0.0 <= r.stability <= 1.0 for r in interims)
    assert final.stability == 0.0 and final.alternatives[0].confidence > 0
    expected = MANIFEST.get("quick_brown_fox").words
    words = final.alternatives[0].words
    assert [w.word for w in words] == [w.word for w in expected]
    for word, truth in zip(words, expected, strict=True):
        start = word.start_time.ToTimedelta().total_seconds()
        assert abs(start - truth.start) < 0.2


async def test_speech_events_frame_the_results(lexicon: Lexicon) -> None:
    audio = fixture_audio("quick_brown_fox")
    async with serving(lexicon) as running:
        responses = [r async for r in recognize(
            running.channel, audio, KEY, Pace(realtime=False),
            vad_events=True)]
    kinds = [r.speech_event_type for r in responses if r.speech_event_type]
    assert kinds == [SPEECH_ACTIVITY_BEGIN, SPEECH_ACTIVITY_END]
    begin = next(i for i, r in enumerate(responses)
                 if r.speech_event_type == SPEECH_ACTIVITY_BEGIN)
    end = next(i for i, r in enumerate(responses)
               if r.speech_event_type == SPEECH_ACTIVITY_END)
    final = next(i for i, r in enumerate(responses)
                 if any(x.is_final for x in r.results))
    assert begin < final < end


async def test_without_interims_only_finals_come(lexicon: Lexicon) -> None:
    audio = fixture_audio("quick_brown_fox")
    async with serving(lexicon) as running:
        responses = [r async for r in recognize(
            running.channel, audio, KEY, Pace(realtime=False),
            interim_results=False)]
    results = [r for response in responses for r in response.results]
    assert results and all(r.is_final for r in results)


async def test_a_wav_header_in_the_first_audio_is_skipped(
    lexicon: Lexicon,
) -> None:
    audio = fixture_audio("quick_brown_fox")
    wav = MANIFEST.get("quick_brown_fox").file().read_bytes()
    async with serving(lexicon) as running:
        config = audio_requests(audio)[0]
        chunks = [wav[i:i + 3200] for i in range(0, len(wav), 3200)]
        requests = [config, *(StreamingRecognizeRequest(audio_content=c)
                              for c in chunks)]
        responses = await responses_of(running.call(iter(requests)))
    assert finals(responses) == reference("quick_brown_fox")


def test_stability_is_the_share_of_words_kept_in_place() -> None:
    assert stability(("the", "quick"), ("the", "quick", "brown")) == 0.667
    assert stability(("the", "quack"), ("the", "quick")) == 0.5
    assert stability((), ("the",)) == 0.0
    assert stability(("the",), ()) == 0.0


def test_audio_is_billed_by_the_started_second() -> None:
    assert billed_seconds(0.0) == 0
    assert billed_seconds(4.0) == 4
    assert billed_seconds(4.0000001) == 4  # float noise is not a second
    assert billed_seconds(4.01) == 5


async def test_calls_without_a_good_key_are_unauthenticated(
    lexicon: Lexicon,
) -> None:
    config = audio_requests(fixture_audio("quick_brown_fox"))[:1]
    async with serving(lexicon) as running:
        for key in ("wrong", ""):
            call = running.call(iter(config), key=key)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await responses_of(call)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        basic = running.stub.StreamingRecognize(
            iter(config),
            metadata=(("authorization", f"Basic {KEY}"),))
        assert await basic.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "authorization: Bearer KEY" in await basic.details()
