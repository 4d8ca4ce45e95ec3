"""Google's streaming config, checked once and turned into ours.

Chapter 5, "gRPC bidirectional streaming: protobuf for audio chunks,
deadline propagation, Google's approach". Where a WebSocket API takes
its settings in the URL's query, Google's `StreamingRecognize` takes
them as the stream's first protobuf message: a typed
`StreamingRecognitionConfig`, so there is no string to parse, only
values to check. Each one this service cannot honour is refused with
INVALID_ARGUMENT before any audio is read; the rest become chapter 4's
`StreamRequest`, which the session core already understands.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.cloud.speech_v1.types import (
    RecognitionConfig,
    StreamingRecognitionConfig,
)

from ch04_streaming.audio import SUPPORTED_RATES, Encoding
from ch04_streaming.dialects.dialect import StreamDefaults, StreamRequest
from ch04_streaming.session import StreamOptions
from ch05_protocols.google_status import invalid_config

AudioEncoding = RecognitionConfig.AudioEncoding
ENCODINGS = {AudioEncoding.LINEAR16: Encoding.LINEAR16,
             AudioEncoding.MULAW: Encoding.MULAW}


@dataclass(frozen=True)
class GoogleStreamConfig:
    """What one stream asked for: the session's part and Google's."""

    request: StreamRequest
    language_code: str
    single_utterance: bool
    word_time_offsets: bool
    voice_activity_events: bool


def parse_streaming_config(streaming: StreamingRecognitionConfig,
                           defaults: StreamDefaults) -> GoogleStreamConfig:
    """Check the first message's config; StreamError if we cannot serve
    it, with what to send instead."""
    config = streaming.config
    if config.encoding not in ENCODINGS:
        raise invalid_config(
            f"encoding {AudioEncoding(config.encoding).name} is not"
            " supported; use LINEAR16 or MULAW.")
    if config.sample_rate_hertz not in SUPPORTED_RATES:
        rates = ", ".join(map(str, SUPPORTED_RATES))
        raise invalid_config(
            f"sample_rate_hertz {config.sample_rate_hertz} is not"
            f" supported; use one of {rates}.")
    if config.audio_channel_count > 1:
        raise invalid_config("only mono audio is supported:"
                             " audio_channel_count 1.")
    language = config.language_code.strip().lower()
    # The mock recognises English only: better refused than answered
    # with English words for French speech.
    if language.partition("-")[0] != "en":
        raise invalid_config(
            f"language_code {config.language_code!r} is not supported;"
            " use an English one such as en-US.")
    return GoogleStreamConfig(
        request=StreamRequest(
            encoding=ENCODINGS[config.encoding],
            sample_rate=config.sample_rate_hertz,
            options=StreamOptions(
                interim_results=streaming.interim_results,
                vad_events=streaming.enable_voice_activity_events,
            ),
            vad=defaults.vad,
            idle_timeout_s=defaults.idle_timeout_s,
        ),
        language_code=language,
        single_utterance=streaming.single_utterance,
        word_time_offsets=config.enable_word_time_offsets,
        voice_activity_events=streaming.enable_voice_activity_events,
    )
