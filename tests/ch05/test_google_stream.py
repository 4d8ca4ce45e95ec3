"""One Google stream without the network: the bound on its responses.

A client that stops reading leaves responses queued on the server. The
queue's bound turns that into RESOURCE_EXHAUSTED instead of memory that
grows for as long as the call lasts.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.cloud.speech_v1.types import StreamingRecognizeRequest

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.app import session_factory
from ch04_streaming.dialects.dialect import StreamDefaults, StreamRequest
from ch04_streaming.engine import LocalMatching, MockRecognizer
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.scheduler import DirectScheduler
from ch04_streaming.stream_handler import ConnectionLimits
from ch04_streaming.stream_hooks import NoTracker, StreamTracker
from ch05_protocols.google_status import StreamError
from ch05_protocols.google_stream import GoogleLimits, RecognizeStream
from tests.ch05.google_harness import (
    audio_chunks,
    requests_for,
    streaming_config,
)


async def admit_all(request: StreamRequest) -> StreamTracker:
    return NoTracker()


async def test_responses_beyond_the_queue_end_the_call(
    lexicon: Lexicon,
) -> None:
    """A single utterance's end is two responses at once (the event and
    the final); a queue of one cannot take both."""
    recognizer = MockRecognizer(LocalMatching(lexicon),
                                Accelerator(PROFILES["zero"]))
    await recognizer.start()
    requests = requests_for(streaming_config(single_utterance=True),
                            audio_chunks("quick_brown_fox"))
    queued = iter(requests)

    async def read_request() -> StreamingRecognizeRequest | None:
        return next(queued, None)

    stream = RecognizeStream(
        read_request,
        session_factory(DirectScheduler(recognizer), ConnectionLimits()),
        StreamDefaults(), GoogleLimits(send_queue=1), request_id=1,
        admit=admit_all)
    stream.start()
    try:
        with pytest.raises(StreamError) as caught:
            async with asyncio.timeout(30):
                while await stream.next_response() is not None:
                    pass
    finally:
        await stream.stop()
        await recognizer.stop()
    assert caught.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.message.startswith(
        "1 responses unread: the client is not reading")
