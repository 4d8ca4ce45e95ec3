"""A stream's config message, parsed once into chapter 4's request.

Chapter 5, "gRPC bidirectional streaming". The first message of a
stream says what its audio is. Everything the session core cannot take
is refused here, before any audio is read, with a reason that names
the field and what would be accepted: an encoding we do not decode, a
sample rate, a language, more than one channel.
"""

from __future__ import annotations

from collections.abc import Mapping

from ch04_streaming.audio import SUPPORTED_RATES, Encoding
from ch04_streaming.dialects.dialect import StreamDefaults, StreamRequest
from ch04_streaming.session import StreamOptions
from ch05_protocols.speech.v1.speech_pb2 import (
    RecognitionConfig,
    StreamingConfig,
)

ENCODINGS = {
    RecognitionConfig.LINEAR16: Encoding.LINEAR16,
    RecognitionConfig.MULAW: Encoding.MULAW,
    RecognitionConfig.FLOAT32: Encoding.FLOAT32,
}
LANGUAGES = ("en", "en-US")  # what the mock engine hears


class ConfigError(ValueError):
    """The config cannot be served: INVALID_ARGUMENT with this reason."""


def encoding_name(value: RecognitionConfig.AudioEncoding.ValueType) -> str:
    try:
        return RecognitionConfig.AudioEncoding.Name(value)
    except ValueError:  # a number this proto does not define
        return str(value)


def parse_streaming_config(streaming: StreamingConfig,
                           defaults: StreamDefaults) -> StreamRequest:
    """The stream's settings, or ConfigError naming what is wrong."""
    if not streaming.HasField("config"):
        raise ConfigError("streaming_config.config is missing: set at"
                          " least encoding and sample_rate_hertz")
    config = streaming.config
    accepted = ", ".join(encoding_name(e) for e in ENCODINGS)
    if config.encoding not in ENCODINGS:
        name = encoding_name(config.encoding)
        raise ConfigError(f"encoding {name} is not supported: use"
                          f" {accepted}")
    if config.sample_rate_hertz not in SUPPORTED_RATES:
        rates = ", ".join(str(r) for r in SUPPORTED_RATES)
        raise ConfigError(f"sample_rate_hertz {config.sample_rate_hertz}"
                          f" is not supported: use one of {rates}")
    if config.language_code not in ("", *LANGUAGES):
        raise ConfigError(f"language_code {config.language_code!r} is not"
                          " supported: use en-US")
    if config.audio_channel_count not in (0, 1):
        raise ConfigError("only mono audio is supported:"
                          " audio_channel_count 1")
    return StreamRequest(
        encoding=ENCODINGS[config.encoding],
        sample_rate=config.sample_rate_hertz,
        options=StreamOptions(
            interim_results=streaming.interim_results,
            vad_events=streaming.enable_voice_activity_events),
        vad=defaults.vad,
        idle_timeout_s=defaults.idle_timeout_s,
    )


def describe(request: StreamRequest) -> Mapping[str, str]:
    """The stream's settings as the hooks see a query (chapter 8)."""
    return {
        "encoding": request.encoding.value,
        "sample_rate": str(request.sample_rate),
        "interim_results": str(request.options.interim_results).lower(),
    }
