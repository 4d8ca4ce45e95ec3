"""A replica's drain, on chapter 6's pipeline in this process.

With a stream open mid-utterance, a notice with little time left ends
it in order: the open utterance's final first, then 1001 "server
shutting down"; meanwhile a new stream is refused with 503 and
`Retry-After`. A stream that ends by itself within the notice is not
cut. Asked twice, the replica drains once.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ch04_streaming.client import load_audio
from ch04_streaming.mock_matcher import Lexicon
from ch12_scaling.replica_drain import ReplicaDrain
from examples.fleet_client import finals_until_close
from tests.ch04.harness import audio_of, reference
from tests.ch06.harness import KEY, TIMEOUT_S, running_pipeline

LISTEN = ("/v1/listen?encoding=linear16&sample_rate=16000"
          "&interim_results=false")
HEADERS = {"Authorization": f"Token {KEY}"}


async def test_a_notice_finishes_the_utterance_then_closes_1001(
        lexicon: Lexicon) -> None:
    async with running_pipeline(lexicon) as pipeline:
        url = f"ws://127.0.0.1:{pipeline.speech.port}"
        drain = ReplicaDrain(pipeline.speech, pipeline.stop,
                             close_reserve_s=5.0)
        payload = load_audio(audio_of("quick_brown_fox")).payload
        async with asyncio.timeout(TIMEOUT_S), connect(
                url + LISTEN, additional_headers=HEADERS) as socket:
            await socket.send(payload[: 16000 * 2 * 3])  # 3 s: mid-word
            heard = asyncio.create_task(finals_until_close(socket))
            draining = asyncio.create_task(drain.drain(seconds_left=5.0))
            await asyncio.sleep(0)
            with pytest.raises(InvalidStatus) as refused:
                await connect(url + LISTEN, additional_headers=HEADERS)
            assert refused.value.response.status_code == 503
            assert refused.value.response.headers["Retry-After"] == "1"
            await draining
            said = await heard
        assert (socket.close_code, socket.close_reason) == (
            1001, "server shutting down")
        assert said and reference("quick_brown_fox").startswith(said[0])
        assert drain.drained.is_set()
        await drain.drain(0.0)  # a second ask waits for the first


async def test_a_stream_that_ends_within_the_notice_is_not_cut(
        lexicon: Lexicon) -> None:
    async with running_pipeline(lexicon) as pipeline:
        url = f"ws://127.0.0.1:{pipeline.speech.port}"
        drain = ReplicaDrain(pipeline.speech, pipeline.stop,
                             close_reserve_s=1.0)
        payload = load_audio(audio_of("weather_forecast")).payload
        async with asyncio.timeout(TIMEOUT_S), connect(
                url + LISTEN, additional_headers=HEADERS) as socket:
            draining = asyncio.create_task(drain.drain(seconds_left=60.0))
            await socket.send(payload)
            await socket.send(json.dumps({"type": "CloseStream"}))
            said = await finals_until_close(socket)
            await draining
        assert socket.close_code == 1000
        assert said == [reference("weather_forecast")]
