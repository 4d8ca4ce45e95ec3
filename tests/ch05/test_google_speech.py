"""Google's own client library, pointed at the local gRPC server.

`google-cloud-speech` is Google's client, unmodified: if it streams a
fixture and reads back the reference transcript, and raises Google's
errors with Google's statuses, the servicer speaks Google's API. Every
refused stream runs beside a good one, which must not notice.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from functools import partial

import grpc
import pytest
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.cloud.speech_v1 import SpeechClient
from google.cloud.speech_v1.services.speech.transports import (
    SpeechGrpcTransport,
)
from google.cloud.speech_v1.types import (
    StreamingRecognitionConfig,
    StreamingRecognizeRequest,
    StreamingRecognizeResponse,
)
from google.oauth2.credentials import Credentials

from ch04_streaming.engine import DecodeRequest
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.transcript import Hypothesis
from ch05_protocols.google_stream import GoogleLimits
from tests.ch04.harness import KEY, MANIFEST, reference
from tests.ch05.google_harness import (
    BEARER,
    LOCAL_TCP,
    AudioEncoding,
    GoogleServer,
    audio_chunks,
    final_transcript,
    google_server,
    requests_for,
    sent,
    streaming_config,
    then_stall,
)

SpeechEventType = StreamingRecognizeResponse.SpeechEventType
END_OF_UTTERANCE = SpeechEventType.END_OF_SINGLE_UTTERANCE
Metadata = Sequence[tuple[str, str]]


async def transcribe(
    server: GoogleServer, fixture_id: str = "quick_brown_fox",
    chunk_ms: int = 100, **options: bool,
) -> list[StreamingRecognizeResponse]:
    """Stream a fixture as a file client does, half-close, read all."""
    fixture = MANIFEST.get(fixture_id)
    encoding = (AudioEncoding.MULAW if fixture.encoding == "mulaw"
                else AudioEncoding.LINEAR16)
    config = streaming_config(encoding, fixture.sample_rate, **options)
    requests = requests_for(config, audio_chunks(fixture_id, chunk_ms))
    async with asyncio.timeout(30):
        stream = await server.client().streaming_recognize(
            requests=sent(requests), metadata=BEARER)
        return [response async for response in stream]


async def refused(
    server: GoogleServer, requests: list[StreamingRecognizeRequest],
    metadata: Metadata = BEARER,
) -> exceptions.GoogleAPICallError:
    """The error a stream ends with, while a good stream runs beside it
    on the same server and gets its whole transcript.

    The refused client sends `requests`, then waits with its stream
    open: the server, not the client's half-close, ends the call. (The
    async client reports INTERNAL instead of the server's status when a
    write of its own is still in flight as the call ends.)
    """

    async def bad() -> exceptions.GoogleAPICallError:
        with pytest.raises(exceptions.GoogleAPICallError) as caught:
            stream = await server.client().streaming_recognize(
                requests=then_stall(requests), metadata=metadata)
            async for _ in stream:
                pass
        return caught.value

    async with asyncio.timeout(30):
        error, good = await asyncio.gather(bad(), transcribe(server))
    assert final_transcript(good) == reference("quick_brown_fox")
    assert not server.speech.gate.slots  # both calls are over on the server
    return error


def seconds(duration: object) -> float:
    """proto-plus hands a Duration back as a `timedelta`; the protobuf
    stubs type it as the message."""
    assert isinstance(duration, timedelta)
    return duration.total_seconds()


def audio_of(fixture_id: str = "quick_brown_fox",
             **options: bool) -> list[StreamingRecognizeRequest]:
    return requests_for(streaming_config(**options),
                        audio_chunks(fixture_id))


@pytest.mark.parametrize("fixture_id", ["quick_brown_fox",
                                        "quick_brown_fox_8k_mulaw"])
async def test_official_client_transcribes_a_fixture(
    lexicon: Lexicon, fixture_id: str,
) -> None:
    async with google_server(lexicon) as server:
        responses = await transcribe(server, fixture_id,
                                     enable_word_time_offsets=True)
    assert final_transcript(responses) == reference(fixture_id)
    finals = [r for response in responses for r in response.results
              if r.is_final]
    words = [w for r in finals for w in r.alternatives[0].words]
    truth = MANIFEST.get(fixture_id).words
    assert [w.word for w in words] == [t.word for t in truth]
    assert all(abs(seconds(w.start_time) - t.start) <= 0.05
               for w, t in zip(words, truth, strict=True))
    assert all(0 < r.alternatives[0].confidence <= 1 for r in finals)
    assert seconds(finals[-1].result_end_time) >= truth[-1].end
    # Billed once, on the last response: whole seconds, rounded up.
    billed = [seconds(r.total_billed_time) for r in responses
              if "total_billed_time" in r]
    duration = MANIFEST.get(fixture_id).duration_s
    assert billed == [math.ceil(duration)]
    assert "total_billed_time" in responses[-1]
    assert len({r.request_id for r in responses}) == 1


async def test_google_sample_code_sends_its_oauth_token(
    lexicon: Lexicon,
) -> None:
    """Google's own sample: the synchronous client, the convenience
    `streaming_recognize(config, requests)`, and credentials that put an
    OAuth access token on every call, as `authorization: Bearer`."""
    async with google_server(lexicon) as server:
        client = SpeechClient(
            credentials=Credentials(  # type: ignore[no-untyped-call]
                token=KEY),
            transport=partial(
                SpeechGrpcTransport,
                ssl_channel_credentials=grpc.local_channel_credentials(
                    LOCAL_TCP)),
            client_options=ClientOptions(
                api_endpoint=f"127.0.0.1:{server.local_port}"))
        audio = (StreamingRecognizeRequest(audio_content=chunk)
                 for chunk in audio_chunks("call_back"))

        def run_sample() -> list[StreamingRecognizeResponse]:
            # The type checker sees the generated method, not the
            # convenience one the library puts in front of it.
            return list(client.streaming_recognize(  # type: ignore[call-arg]
                streaming_config(), audio,  # type: ignore[arg-type]
                timeout=30))

        responses = await asyncio.to_thread(run_sample)
    assert final_transcript(responses) == reference("call_back")


async def test_api_key_in_client_options(lexicon: Lexicon) -> None:
    async with google_server(lexicon) as server:
        client = server.credentialed_client(api_key=KEY)
        async with asyncio.timeout(30):
            stream = await client.streaming_recognize(
                requests=sent(audio_of("weather_forecast")))
            responses = [response async for response in stream]
    assert final_transcript(responses) == reference("weather_forecast")


async def test_a_wrong_api_key_is_an_invalid_argument(
    lexicon: Lexicon,
) -> None:
    async with google_server(lexicon) as server:
        client = server.credentialed_client(api_key="not-the-key")
        with pytest.raises(exceptions.InvalidArgument) as caught:
            async with asyncio.timeout(30):
                stream = await client.streaming_recognize(
                    requests=then_stall(audio_of()[:1]))
                async for _ in stream:
                    pass
    assert caught.value.message == (
        "API key not valid. Please pass a valid API key.")


@pytest.mark.parametrize(("metadata", "says"), [
    ((), "Request is missing required authentication credential."),
    ((("authorization", "Bearer wrong"),),
     "Request had invalid authentication credentials."),
    ((("authorization", f"Token {KEY}"),),
     "Request had invalid authentication credentials."),
], ids=["missing", "wrong", "not-bearer"])
async def test_a_call_without_a_valid_credential_is_unauthenticated(
    lexicon: Lexicon, metadata: Metadata, says: str,
) -> None:
    async with google_server(lexicon) as server:
        error = await refused(server, audio_of()[:1], metadata)
    assert error.grpc_status_code is grpc.StatusCode.UNAUTHENTICATED
    assert error.message.startswith(says)
    assert "OAuth 2 access token" in error.message


async def test_interim_results_carry_stability(lexicon: Lexicon) -> None:
    async with google_server(lexicon) as server:
        responses = await transcribe(server, interim_results=True)
    interims = [r.results for r in responses
                if r.results and not r.results[0].is_final]
    assert interims
    for results in interims:
        # Google's interims: the settled words, then the changing tail.
        assert [r.stability for r in results][-1] == pytest.approx(0.01)
        assert all(r.stability == pytest.approx(0.9)
                   for r in results[:-1])
        assert all(not r.is_final and r.alternatives[0].confidence == 0
                   for r in results)
    split = [results for results in interims if len(results) == 2]
    assert split and all(
        results[1].alternatives[0].transcript.startswith(" ")
        for results in split)
    finals = [r for response in responses for r in response.results
              if r.is_final]
    assert all(r.stability == 0 for r in finals)
    assert final_transcript(responses) == reference("quick_brown_fox")


async def test_single_utterance_stops_hearing_after_its_final(
    lexicon: Lexicon,
) -> None:
    """The client does as Google asks: at END_OF_SINGLE_UTTERANCE it
    stops sending and half-closes; the server sends what is left."""
    first = MANIFEST.get("support_call").utterances[0]
    heard_the_end = asyncio.Event()
    config = streaming_config(single_utterance=True, interim_results=True)

    async def microphone() -> AsyncIterator[StreamingRecognizeRequest]:
        yield StreamingRecognizeRequest(streaming_config=config)
        for chunk in audio_chunks("support_call"):
            if heard_the_end.is_set():
                return
            yield StreamingRecognizeRequest(audio_content=chunk)
        await heard_the_end.wait()

    responses = []
    async with google_server(lexicon) as server:
        async with asyncio.timeout(30):
            stream = await server.client().streaming_recognize(
                requests=microphone(), metadata=BEARER)
            async for response in stream:
                responses.append(response)
                if response.speech_event_type == END_OF_UTTERANCE:
                    heard_the_end.set()
    events = [r.speech_event_type for r in responses]
    (final,) = [i for i, r in enumerate(responses)
                if r.results and r.results[0].is_final]
    assert sum(e == END_OF_UTTERANCE for e in events) == 1
    assert events[final - 1] == END_OF_UTTERANCE
    assert final_transcript(responses) == first.text
    assert final == len(responses) - 2  # then only the bill
    assert "total_billed_time" in responses[-1]


async def test_after_a_single_utterance_a_quiet_client_is_no_error(
    lexicon: Lexicon,
) -> None:
    """Neither audio nor a half-close: the call ends in order once the
    audio timeout has passed, with the bill."""
    limits = GoogleLimits(audio_timeout_s=0.5)
    async with google_server(lexicon, limits) as server:
        async with asyncio.timeout(30):
            stream = await server.client().streaming_recognize(
                requests=then_stall(audio_of(single_utterance=True)),
                metadata=BEARER)
            responses = [response async for response in stream]
    assert final_transcript(responses) == reference("quick_brown_fox")
    assert "total_billed_time" in responses[-1]


async def test_voice_activity_events_frame_the_speech(
    lexicon: Lexicon,
) -> None:
    async with google_server(lexicon) as server:
        responses = await transcribe(server,
                                     enable_voice_activity_events=True)
    kinds = [
        "final" if r.results else SpeechEventType(r.speech_event_type).name
        for r in responses if r.results or r.speech_event_type]
    assert kinds == ["SPEECH_ACTIVITY_BEGIN", "SPEECH_ACTIVITY_END",
                     "final"]
    begin = seconds(responses[0].speech_event_time)
    first_word = MANIFEST.get("quick_brown_fox").words[0].start
    assert abs(begin - first_word) < 0.3


@pytest.mark.parametrize(("requests", "says"), [
    (audio_of()[1:2], "Malordered Data Received. Send exactly one config"),
    ([*audio_of()[:2], audio_of()[0]],
     "Malordered Data Received. Expected audio but none was set."),
], ids=["audio-first", "second-config"])
async def test_config_must_come_first_and_once(
    lexicon: Lexicon, requests: list[StreamingRecognizeRequest], says: str,
) -> None:
    async with google_server(lexicon) as server:
        error = await refused(server, requests)
    assert error.grpc_status_code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.message.startswith(says)


async def test_an_audio_message_over_25_kb_is_refused(
    lexicon: Lexicon,
) -> None:
    config = streaming_config()
    requests = requests_for(config, [bytes(25_600), bytes(25_602)])
    async with google_server(lexicon) as server:
        error = await refused(server, requests)
        # 800 ms of 16 kHz PCM is exactly 25,600 bytes: allowed.
        largest = await transcribe(server, chunk_ms=800)
    assert error.grpc_status_code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == (
        "Audio chunk can be of a maximum of 25600 bytes.")
    assert final_transcript(largest) == reference("quick_brown_fox")


def stereo_config() -> StreamingRecognitionConfig:
    config = streaming_config()
    config.config.audio_channel_count = 2
    return config


async def test_audio_that_cannot_be_linear16_is_refused(
    lexicon: Lexicon,
) -> None:
    requests = requests_for(streaming_config(), [bytes(3_201)])
    async with google_server(lexicon) as server:
        error = await refused(server, requests)
    assert error.grpc_status_code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == (
        "Invalid audio content: linear16 frame of 3201 bytes is not a"
        " whole number of 2-byte samples")


@pytest.mark.parametrize(("config", "says"), [
    (streaming_config(AudioEncoding.FLAC),
     "encoding FLAC is not supported; use LINEAR16 or MULAW."),
    (streaming_config(rate=44_100),
     "sample_rate_hertz 44100 is not supported;"),
    (stereo_config(), "only mono audio is supported"),
], ids=["flac", "44.1kHz", "stereo"])
async def test_an_unsupported_config_is_refused_before_audio(
    lexicon: Lexicon, config: object, says: str,
) -> None:
    requests = [StreamingRecognizeRequest(streaming_config=config)]
    async with google_server(lexicon) as server:
        error = await refused(server, requests)
    assert error.grpc_status_code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.message.startswith("Invalid recognition 'config': " + says)


async def test_a_language_other_than_english_is_refused(
    lexicon: Lexicon,
) -> None:
    config = streaming_config()
    config.config.language_code = "fr-FR"
    async with google_server(lexicon) as server:
        error = await refused(server, requests_for(config, []))
    assert error.grpc_status_code is grpc.StatusCode.INVALID_ARGUMENT
    assert "language_code 'fr-FR' is not supported" in error.message


async def test_audio_that_stops_arriving_times_out(lexicon: Lexicon) -> None:
    limits = GoogleLimits(audio_timeout_s=0.5)
    async with google_server(lexicon, limits) as server:
        error = await refused(server, audio_of()[:5])
    assert error.grpc_status_code is grpc.StatusCode.OUT_OF_RANGE
    assert error.message == (
        "Audio Timeout Error: Long duration elapsed without audio. Audio"
        " should be sent close to real time.")


async def test_a_stream_longer_than_the_limit_is_ended(
    lexicon: Lexicon,
) -> None:
    """The good stream beside it ends well within the limit."""
    limits = GoogleLimits(max_stream_s=1.5)
    async with google_server(lexicon, limits) as server:
        error = await refused(server, audio_of()[:5])
    assert error.grpc_status_code is grpc.StatusCode.OUT_OF_RANGE
    assert error.message == (
        "Exceeded maximum allowed stream duration of 1.5 seconds.")


async def read_all(server: GoogleServer,
                   requests: AsyncIterator[StreamingRecognizeRequest]
                   ) -> None:
    """Stream with Google's client, no retries, and read every
    response: the status it ends with is what the test looks at."""
    async with asyncio.timeout(30):
        stream = await server.client().streaming_recognize(
            requests=requests, metadata=BEARER, retry=None)
        async for _ in stream:
            pass


async def test_a_stream_before_the_model_is_ready_is_unavailable(
    lexicon: Lexicon,
) -> None:
    """UNAVAILABLE is one of the two statuses Google's client retries by
    default (for up to 5000 s); `retry=None` shows the first answer."""
    async with google_server(lexicon, ready=False) as server:
        with pytest.raises(exceptions.ServiceUnavailable) as caught:
            await read_all(server, then_stall(audio_of()[:1]))
    assert caught.value.message == "The service is currently unavailable."


async def test_last_finals_that_are_not_ready_in_time(
    lexicon: Lexicon,
) -> None:
    """The client half-closes mid-word; with no time allowed, the final
    of the open utterance cannot be ready."""
    limits = GoogleLimits(drain_timeout_s=0)
    async with google_server(lexicon, limits) as server:
        with pytest.raises(exceptions.DeadlineExceeded) as caught:
            await read_all(server, sent(audio_of()[:20]))
    assert caught.value.message.startswith(
        "The last results were not ready within 0 s")


async def test_an_engine_failure_is_an_internal_error(
    lexicon: Lexicon, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The engine fails on the final of an utterance the client's
    half-close left open: after the last audio, so no write is in
    flight when the call ends."""
    async with google_server(lexicon) as server:
        decode = server.recognizer.decode

        async def lost_on_final(batch: Sequence[DecodeRequest]
                                ) -> list[Hypothesis]:
            if any(request.final for request in batch):
                raise RuntimeError("device lost")
            return await decode(batch)

        monkeypatch.setattr(server.recognizer, "decode", lost_on_final)
        with pytest.raises(exceptions.InternalServerError) as caught:
            await read_all(server, sent(audio_of()[:20]))
    assert caught.value.message == "Internal error encountered."
    assert "event=stream_failed" in caplog.text
