"""The OpenAI-compatible routes' wire types, for answers and the docs.

Chapter 7, "SDK and developer experience". These are the shapes
OpenAI's SDKs parse (`Transcription`, `TranscriptionVerbose`, the error
body, the model list); declaring them makes the OpenAPI document say
exactly what each route returns, errors included, which the tests check
every answer against.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel

from ch07_api.transcriber import Transcript


class DurationUsage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: int


class TranscriptionJson(BaseModel):
    text: str
    usage: DurationUsage


class VerboseSegment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class VerboseWord(BaseModel):
    word: str
    start: float
    end: float


class TranscriptionVerboseJson(BaseModel):
    task: Literal["transcribe"] = "transcribe"
    language: str
    duration: float
    text: str
    segments: list[VerboseSegment]
    words: list[VerboseWord]
    usage: DurationUsage


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class OpenAIError(BaseModel):
    error: OpenAIErrorDetail


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


def usage_of(transcript: Transcript) -> DurationUsage:
    return DurationUsage(seconds=math.ceil(transcript.duration_s))


def verbose_of(transcript: Transcript, language: str
               ) -> TranscriptionVerboseJson:
    segments = []
    for segment in transcript.segments:
        confidence = sum(w.confidence for w in segment.words) / len(
            segment.words)
        segments.append(VerboseSegment(
            id=segment.id, seek=0, start=segment.start, end=segment.end,
            text=segment.text, tokens=[], temperature=0.0,
            avg_logprob=round(math.log(max(confidence, 1e-6)), 4),
            compression_ratio=1.0, no_speech_prob=0.0))
    words = [VerboseWord(word=w.text, start=w.start, end=w.end)
             for w in transcript.words]
    return TranscriptionVerboseJson(
        language=language, duration=round(transcript.duration_s, 3),
        text=transcript.text, segments=segments, words=words,
        usage=usage_of(transcript))
