"""Google's API on a local gRPC server, and the official client on it.

The server runs only the Google servicer, on the mock engine with a
zero-cost device, in this process on free ports: one plain (the client
sends its key as call metadata) and one with gRPC's local credentials,
over which the client library sends its own credentials, an OAuth token
or an API key, as it does to Google.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import grpc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import Credentials
from google.cloud.speech_v1 import SpeechAsyncClient
from google.cloud.speech_v1.services.speech.transports import (
    SpeechGrpcAsyncIOTransport,
)
from google.cloud.speech_v1.types import (
    RecognitionConfig,
    StreamingRecognitionConfig,
    StreamingRecognizeRequest,
    StreamingRecognizeResponse,
)

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.auth import ApiKeys
from ch04_streaming.client import chunk_bounds, load_audio
from ch04_streaming.engine import LocalMatching, MockRecognizer
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.scheduler import DirectScheduler
from ch04_streaming.stream_handler import ConnectionLimits
from ch05_protocols.deadline import deadline_sessions
from ch05_protocols.google_speech import GoogleSpeech, add_google_speech
from ch05_protocols.google_stream import GoogleLimits
from ch05_protocols.stream_gate import StreamGate
from tests.ch04.harness import KEY, audio_of

AudioEncoding = RecognitionConfig.AudioEncoding
BEARER = (("authorization", f"Bearer {KEY}"),)
LOCAL_TCP = grpc.LocalConnectionType.LOCAL_TCP


@dataclass
class GoogleServer:
    speech: GoogleSpeech
    recognizer: MockRecognizer
    port: int  # plain: credentials as call metadata
    local_port: int  # local credentials: the library's own credentials

    def client(self) -> SpeechAsyncClient:
        """The official async client over a plain channel, as for any
        gRPC server without TLS."""
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
        return SpeechAsyncClient(
            transport=SpeechGrpcAsyncIOTransport(channel=channel))

    def credentialed_client(self, credentials: Credentials | None = None,
                            api_key: str | None = None
                            ) -> SpeechAsyncClient:
        """The official client as it calls Google: its own credentials
        on every call, here over local credentials instead of TLS."""
        transport = partial(
            SpeechGrpcAsyncIOTransport,
            ssl_channel_credentials=grpc.local_channel_credentials(LOCAL_TCP))
        return SpeechAsyncClient(
            credentials=credentials, transport=transport,
            client_options=ClientOptions(
                api_endpoint=f"127.0.0.1:{self.local_port}",
                api_key=api_key))


@asynccontextmanager
async def google_server(lexicon: Lexicon,
                        limits: GoogleLimits | None = None,
                        ready: bool = True, max_streams: int = 100
                        ) -> AsyncIterator[GoogleServer]:
    recognizer = MockRecognizer(LocalMatching(lexicon),
                                Accelerator(PROFILES["zero"]))
    server = grpc.aio.server()
    speech = GoogleSpeech(
        deadline_sessions(DirectScheduler(recognizer), ConnectionLimits()),
        StreamGate(recognizer, max_streams), ApiKeys.of(KEY),
        limits=limits or GoogleLimits())
    add_google_speech(server, speech)
    port = server.add_insecure_port("127.0.0.1:0")
    local_port = server.add_secure_port(
        "127.0.0.1:0", grpc.local_server_credentials(LOCAL_TCP))
    await server.start()
    if ready:
        await recognizer.start()
    try:
        yield GoogleServer(speech, recognizer, port, local_port)
    finally:
        await server.stop(grace=None)
        await recognizer.stop()


def streaming_config(encoding: int = AudioEncoding.LINEAR16,
                     rate: int = 16_000, *,
                     interim_results: bool = False,
                     single_utterance: bool = False,
                     enable_voice_activity_events: bool = False,
                     enable_word_time_offsets: bool = False,
                     ) -> StreamingRecognitionConfig:
    """A config as Google's samples write one."""
    return StreamingRecognitionConfig(
        config=RecognitionConfig(
            encoding=encoding, sample_rate_hertz=rate,
            language_code="en-US",
            enable_word_time_offsets=enable_word_time_offsets),
        interim_results=interim_results,
        single_utterance=single_utterance,
        enable_voice_activity_events=enable_voice_activity_events)


def audio_chunks(fixture_id: str, chunk_ms: int = 100) -> list[bytes]:
    """A fixture as raw audio in Google's recommended 100 ms messages."""
    audio = load_audio(audio_of(fixture_id))
    width = 1 if audio.encoding == "mulaw" else 2
    size = audio.sample_rate * width * chunk_ms // 1000
    bounds = chunk_bounds(len(audio.payload), size, 1)
    return [audio.payload[start:end] for start, end in bounds]


def requests_for(config: StreamingRecognitionConfig,
                 chunks: Iterable[bytes]
                 ) -> list[StreamingRecognizeRequest]:
    """The config first, then the audio: what Google asks for."""
    return [StreamingRecognizeRequest(streaming_config=config),
            *(StreamingRecognizeRequest(audio_content=c) for c in chunks)]


async def then_stall(requests: Iterable[StreamingRecognizeRequest]
                     ) -> AsyncIterator[StreamingRecognizeRequest]:
    """Send `requests`, then keep the stream open without audio until
    the call ends: what a stalled microphone looks like."""
    for request in requests:
        yield request
    await asyncio.Event().wait()


async def sent(requests: Iterable[StreamingRecognizeRequest]
               ) -> AsyncIterator[StreamingRecognizeRequest]:
    """Send `requests`, then half-close: the end of a file."""
    for request in requests:
        yield request


def final_transcript(responses: Iterable[StreamingRecognizeResponse]
                     ) -> str:
    return " ".join(
        r.alternatives[0].transcript for response in responses
        for r in response.results if r.is_final)
