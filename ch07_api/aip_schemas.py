"""The AIP routes' resources: transcripts and operations, v1 and v2.

Chapter 7, "Resource-oriented API design" and "API versioning
strategies". A transcript has a name (`transcripts/{id}`) and the
standard fields (AIP-148: `create_time`); an operation has a name,
`done`, typed `metadata` with its progress, and when done either
`response` or `error` (AIP-151). v2 makes one breaking change to the
shape, on purpose: times are `google.protobuf.Duration` strings
(`"1.250s"`, as AIP-142 asks) where v1 has float seconds. A client
of v1 reading v2 would fail, so v2 is a new major version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ch07_api.store import OperationRecord, TranscriptRecord

TYPE_PREFIX = "type.googleapis.com/speech"


class CreateTranscriptAudio(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(
        description="the audio file, base64-encoded", min_length=1,
        pattern=r"^[A-Za-z0-9+/]*={0,2}$")


class CreateTranscriptRequest(BaseModel):
    """The body of `POST /v{1,2}/transcripts` (AIP-133)."""

    model_config = ConfigDict(extra="forbid")
    audio: CreateTranscriptAudio
    model: str = "mock-asr"
    language_code: str = "en"


class WordV1(BaseModel):
    word: str
    start_seconds: float
    end_seconds: float
    confidence: float


class SegmentV1(BaseModel):
    start_seconds: float
    end_seconds: float
    text: str
    words: list[WordV1]


class TranscriptV1(BaseModel):
    type_url: str | None = Field(None, serialization_alias="@type")
    name: str
    model: str
    language_code: str
    create_time: datetime
    duration_seconds: float
    text: str
    segments: list[SegmentV1]


class WordV2(BaseModel):
    word: str
    start_offset: str  # google.protobuf.Duration, "1.250s"
    end_offset: str
    confidence: float


class SegmentV2(BaseModel):
    start_offset: str
    end_offset: str
    text: str
    words: list[WordV2]


class TranscriptV2(BaseModel):
    type_url: str | None = Field(None, serialization_alias="@type")
    name: str
    model: str
    language_code: str
    create_time: datetime
    duration: str
    text: str
    segments: list[SegmentV2]


class Status(BaseModel):
    """google.rpc.Status: `code` is a google.rpc.Code number."""

    code: int
    message: str
    details: list[dict[str, Any]] = []


class OperationMetadata(BaseModel):
    type_url: str = Field(serialization_alias="@type")
    state: str
    progress_percent: int
    model: str
    transcript: str  # the name the transcript will have
    create_time: datetime
    update_time: datetime


class OperationV1(BaseModel):
    name: str
    done: bool
    metadata: OperationMetadata
    response: TranscriptV1 | None = None
    error: Status | None = None


class OperationV2(BaseModel):
    name: str
    done: bool
    metadata: OperationMetadata
    response: TranscriptV2 | None = None
    error: Status | None = None


class ListTranscriptsV1(BaseModel):
    transcripts: list[TranscriptV1]
    next_page_token: str


class ListTranscriptsV2(BaseModel):
    transcripts: list[TranscriptV2]
    next_page_token: str


class ListOperationsV1(BaseModel):
    operations: list[OperationV1]
    next_page_token: str


class ListOperationsV2(BaseModel):
    operations: list[OperationV2]
    next_page_token: str


class RpcErrorBody(BaseModel):
    code: int
    message: str
    status: str
    details: list[dict[str, Any]]


class RpcError(BaseModel):
    """The error body of every AIP route: google.rpc.Status as JSON."""

    error: RpcErrorBody


def duration(seconds: float) -> str:
    """google.protobuf.Duration's JSON form: seconds with an `s`."""
    return f"{seconds:.3f}s"


def transcript_v1(record: TranscriptRecord, typed: bool = False
                  ) -> TranscriptV1:
    t = record.transcript
    return TranscriptV1(
        type_url=f"{TYPE_PREFIX}.v1.Transcript" if typed else None,
        name=f"transcripts/{record.id}", model=record.model,
        language_code=record.language, create_time=record.create_time,
        duration_seconds=round(t.duration_s, 3), text=t.text,
        segments=[SegmentV1(
            start_seconds=s.start, end_seconds=s.end, text=s.text,
            words=[WordV1(word=w.text, start_seconds=w.start,
                          end_seconds=w.end, confidence=w.confidence)
                   for w in s.words])
            for s in t.segments])


def transcript_v2(record: TranscriptRecord, typed: bool = False
                  ) -> TranscriptV2:
    t = record.transcript
    return TranscriptV2(
        type_url=f"{TYPE_PREFIX}.v2.Transcript" if typed else None,
        name=f"transcripts/{record.id}", model=record.model,
        language_code=record.language, create_time=record.create_time,
        duration=duration(t.duration_s), text=t.text,
        segments=[SegmentV2(
            start_offset=duration(s.start), end_offset=duration(s.end),
            text=s.text,
            words=[WordV2(word=w.text, start_offset=duration(w.start),
                          end_offset=duration(w.end),
                          confidence=w.confidence)
                   for w in s.words])
            for s in t.segments])


def metadata_of(record: OperationRecord, version: str
                ) -> OperationMetadata:
    share = (record.processed_audio_s / record.total_audio_s
             if record.total_audio_s else 1.0)
    percent = 100 if record.state.value == "SUCCEEDED" else min(
        99, int(share * 100))
    return OperationMetadata(
        type_url=f"{TYPE_PREFIX}.{version}.TranscribeMetadata",
        state=record.state.value, progress_percent=percent,
        model=record.model, transcript=f"transcripts/{record.transcript_id}",
        create_time=record.create_time, update_time=record.update_time)


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON-ready, by alias (`@type`), absent fields left out."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
