"""`POST /v1/audio/transcriptions`: the form, parsed once into a type.

Chapter 7, "SDK and developer experience". The route's multipart form is
untrusted input: it is parsed here, once, into a `TranscriptionRequest`,
and every field that is missing, unknown or malformed is a 400 naming
the field (OpenAI's `param`), the way OpenAI answers. The fields are
OpenAI's, plus `stream_format`, which picks one of the three streaming
styles this chapter compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from starlette.datastructures import FormData, UploadFile

from ch07_api.errors import InvalidRequestError, UnsupportedMediaError
from ch07_api.stream_styles import StreamFormat

KNOWN_FIELDS = {"file", "model", "language", "prompt", "response_format",
                "stream", "temperature", "timestamp_granularities[]",
                "include[]", "chunking_strategy", "stream_format"}
AUDIO_TYPES = ("audio/", "video/webm", "video/mp4", "video/ogg",
               "application/octet-stream", "application/ogg")
LANGUAGES = {"en": "english"}  # what the mock model hears
E = TypeVar("E", bound=StrEnum)


class ResponseFormat(StrEnum):
    JSON = "json"
    TEXT = "text"
    VERBOSE_JSON = "verbose_json"


@dataclass(frozen=True)
class TranscriptionRequest:
    file: UploadFile
    model: str
    language: str  # the name verbose_json reports
    response_format: ResponseFormat
    stream: bool
    stream_format: StreamFormat
    prompt: str | None


def parse_bool(value: str, param: str) -> bool:
    """Booleans in any case, as OpenAI's and our other APIs accept."""
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise InvalidRequestError(
        f"'{value}' is not a boolean: use true or false", param)


def one_of(kind: type[E], value: str, param: str) -> E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(kind)
        raise InvalidRequestError(
            f"'{value}' is not one of: {allowed}", param) from None


def text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"'{name}' must be text, not a file",
                                  name)
    return value


def parse_transcription_form(form: FormData) -> TranscriptionRequest:
    unknown = sorted(set(form.keys()) - KNOWN_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"unrecognized request argument: {unknown[0]}", unknown[0])
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequestError("'file' is required: the audio file"
                                  " as a multipart file part", "file")
    media = (upload.content_type or "application/octet-stream").lower()
    if not media.startswith(AUDIO_TYPES):
        raise UnsupportedMediaError(
            f"'{media}' is not an audio type; send audio/wav, audio/flac,"
            " audio/ogg, audio/mpeg or application/octet-stream", "file")
    model = text_field(form, "model")
    if not model:
        raise InvalidRequestError("'model' is required", "model")
    language = text_field(form, "language") or "en"
    if language not in LANGUAGES:
        raise InvalidRequestError(
            f"language '{language}' is not supported; supported: "
            + ", ".join(LANGUAGES), "language")
    temperature = text_field(form, "temperature")
    if temperature is not None:
        check_temperature(temperature)
    return TranscriptionRequest(
        file=upload, model=model, language=LANGUAGES[language],
        response_format=one_of(
            ResponseFormat, text_field(form, "response_format") or "json",
            "response_format"),
        stream=parse_bool(text_field(form, "stream") or "false", "stream"),
        stream_format=one_of(
            StreamFormat, text_field(form, "stream_format") or "transcript",
            "stream_format"),
        prompt=text_field(form, "prompt"))


def check_temperature(text: str) -> None:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise InvalidRequestError(
            f"temperature '{text}' must be a number from 0 to 1",
            "temperature")
