"""Per-utterance and per-stream records: the raw data of speech SLIs.

Chapter 11, "Streaming-specific SLIs". A load run or a production log
writes one JSON object a line: an `utterance` record says when its
first result and its final arrived, what was said and what was heard; a
`stream` record says how the connection ended. The file is untrusted,
so it is parsed once, line by line, into frozen types, and a bad line
is refused with its number and the field at fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from ch11_slo.invalid import InvalidField

Outcome = Literal["ok", "no_final", "dropped", "error"]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
WEBSOCKET_CLOSE_CODES = (1000, 4999)


class UtteranceRecord(BaseModel):
    """One utterance of one stream, timed on the client.

    `first_result_seconds` runs from the moment the first word began to
    be spoken, by the client's audio clock, to receiving the first
    non-empty result; `final_latency_seconds` from the moment the last
    word finished to receiving the final; `processing_seconds` from the
    first word to the final. Audio waits on the client until its chunk
    is full, and that wait counts, as the listener feels it. Only an
    utterance whose final arrived (`outcome` "ok") has the last two.
    `paced` says the audio went out at the pace of speech; audio that
    was not has no moment of speaking, and is timed from when it was
    sent. Paced processing time holds the audio's own duration, and
    says nothing of the real-time factor.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    type: Literal["utterance"] = "utterance"
    stream_id: Annotated[str, Field(min_length=1)]
    utterance_index: Annotated[int, Field(ge=0)]
    outcome: Outcome
    audio_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    first_result_seconds: Seconds | None
    final_latency_seconds: Seconds | None
    processing_seconds: Seconds | None
    reference: str
    hypothesis: str
    dialect: str | None = None
    fixture_id: str | None = None
    paced: bool = False
    # seconds between consecutive results with words, interim or final:
    # the speech API's inter-token latency
    result_gaps_seconds: tuple[Seconds, ...] = ()

    @field_validator("final_latency_seconds", "processing_seconds")
    @classmethod
    def timed_only_with_a_final(
        cls, value: float | None, info: ValidationInfo
    ) -> float | None:
        outcome = info.data.get("outcome")
        if outcome == "ok" and value is None:
            raise ValueError("required when outcome is 'ok'")
        if outcome not in (None, "ok") and value is not None:
            raise ValueError(f"must be null when outcome is {outcome!r}")
        return value

    @field_validator("reference")
    @classmethod
    def has_words(cls, value: str) -> str:
        # An utterance is speech: with no reference word, WER is 0/0.
        if not any(ch.isalnum() for ch in value):
            raise ValueError("needs at least one word")
        return value


class StreamRecord(BaseModel):
    """One connection: how it closed, and whether the client came back.

    `reconnected` says that after this stream dropped, the client opened
    a new one and carried on; it is what reconnection success counts.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    type: Literal["stream"] = "stream"
    stream_id: Annotated[str, Field(min_length=1)]
    close_code: Annotated[
        int,
        Field(ge=WEBSOCKET_CLOSE_CODES[0], le=WEBSOCKET_CLOSE_CODES[1]),
    ]
    reconnected: bool
    started_at: AwareDatetime
    ended_at: AwareDatetime

    @field_validator("ended_at")
    @classmethod
    def ends_after_start(
        cls, value: datetime, info: ValidationInfo
    ) -> datetime:
        started = info.data.get("started_at")
        if started is not None and value < started:
            raise ValueError("before started_at")
        return value


Record = UtteranceRecord | StreamRecord
RECORD = TypeAdapter[Record](
    Annotated[Record, Field(discriminator="type")]
)


class InvalidRecord(InvalidField):
    """A line of a records file that is not a valid record."""

    def __init__(self, path: Path, line: int, field: str,
                 problem: str) -> None:
        super().__init__(field, problem)
        self.args = (f"{path}:{line}: {field}: {problem}",)
        self.path = path
        self.line = line


def first_problem(error: ValidationError) -> tuple[str, str]:
    """The field at fault and what is wrong with it, for people."""
    errors = error.errors()
    # A misspelt field is also a missing one: name the misspelling.
    detail = next((e for e in errors if e["type"] == "extra_forbidden"),
                  errors[0])
    # The first part of a location is the record type: drop it.
    where = ".".join(str(part) for part in detail["loc"][1:])
    kind = detail["type"]
    if kind.startswith("union_tag"):
        return "type", "must be 'utterance' or 'stream'"
    if kind in ("json_invalid", "model_type", "dict_type"):
        return "line", "not a JSON object"
    return where or "record", detail["msg"].removeprefix("Value error, ")


def read_records(path: Path) -> list[Record]:
    """Parse a JSONL file of records; InvalidRecord on the first bad one."""
    records: list[Record] = []
    seen: dict[tuple[str, ...], int] = {}
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = RECORD.validate_json(line)
        except ValidationError as error:
            raise InvalidRecord(path, number, *first_problem(error)) from None
        key: tuple[str, ...] = (record.type, record.stream_id)
        field = "stream_id"
        if isinstance(record, UtteranceRecord):
            key += (str(record.utterance_index),)
            field = "utterance_index"
        if key in seen:
            raise InvalidRecord(
                path, number, field,
                f"duplicate of the record at line {seen[key]}")
        seen[key] = number
        records.append(record)
    return records


def write_records(path: Path, records: Iterable[Record]) -> None:
    """Write `records` as JSONL, one record a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(record.model_dump_json() + "\n")
