"""Usage events: CloudEvents-shaped, parsed once at the edge.

Chapter 8, "Idempotent event collection". A usage event says who used
how much of what, and when it happened (event time, not the time it
reached us, so late usage lands in the right invoice period). Its `id`
is deterministic (stream id + sequence), so a sender that retries sends
the same event again and the ledger can recognise it. Values are whole
numbers (milliseconds, characters, tokens): Stripe meters accept no
fractions, and sums of integers never drift. Each value is bounded by
its meter (`MAX_VALUE`), so no sum of a customer's events can overflow
the ledger's 64-bit integers and stop the roll-up for everyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)

EVENT_TYPE = "com.speechapi.usage.v1"
Meter = Literal["audio_ms", "characters", "tokens"]
Feature = Literal["pii_redaction", "diarization", "summarization"]
Name = Annotated[str, Field(min_length=1, max_length=200)]

# The most one event may report: a day of audio, a billion characters
# or tokens. Sums of 10^11 such events still fit a signed 64-bit integer.
MAX_VALUE: Mapping[str, int] = {"audio_ms": 86_400_000,
                                "characters": 10**9, "tokens": 10**9}
FUTURE_ALLOWANCE = timedelta(minutes=5)  # Stripe's own future limit
MAX_AGE = timedelta(days=35)  # Stripe cannot bill older usage


class UsageData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    meter: Meter
    value: Annotated[StrictInt, Field(ge=0)]
    features: tuple[Feature, ...] = ()
    stream_id: Name | None = None  # the request that used it

    @model_validator(mode="after")
    def within_the_meters_bound(self) -> UsageData:
        if self.value > MAX_VALUE[self.meter]:
            raise ValueError(
                f"value {self.value} is over the {self.meter} meter's"
                f" bound of {MAX_VALUE[self.meter]} per event")
        return self


class UsageEvent(BaseModel):
    """One CloudEvents 1.0 event; `subject` is the customer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: Name
    source: Name
    type: Literal["com.speechapi.usage.v1"] = "com.speechapi.usage.v1"
    subject: Name
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: UsageData

    @property
    def key(self) -> tuple[str, str]:
        """CloudEvents identity: `id` is unique within its `source`."""
        return (self.source, self.id)

    @property
    def time_ms(self) -> int:
        return round(self.time.timestamp() * 1000)


@dataclass(frozen=True)
class Rejected:
    """An event that cannot be accepted, and why (for the sender)."""

    id: str | None
    reason: str


def parse_event(raw: object, customers: Mapping[str, object],
                now: datetime) -> UsageEvent | Rejected:
    """Validate one untrusted event: shape, customer and time window."""
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    event_id = raw_id if isinstance(raw_id, str) else None
    try:
        event = UsageEvent.model_validate(raw)
    except ValidationError as error:
        return Rejected(event_id, describe(error))
    if event.subject not in customers:
        return Rejected(event.id, f"unknown customer {event.subject!r}")
    if problem := window_problem(event.time, now):
        return Rejected(event.id, f"event time is {problem}, outside"
                        " the window Stripe bills")
    return event


def window_problem(at: datetime, now: datetime) -> str | None:
    """How a time falls outside the window Stripe bills, if it does."""
    if at < now - MAX_AGE:
        return f"more than {MAX_AGE.days} days ago"
    if at > now + FUTURE_ALLOWANCE:
        minutes = FUTURE_ALLOWANCE.seconds // 60
        return f"more than {minutes} minutes ahead, in the future"
    return None


def describe(error: ValidationError) -> str:
    """The first problem, as `field.path: message`."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "event"
    return f"{where}: {first['msg']}"[:200]


def usage_event(*, stream_id: str, sequence: int, customer: str,
                source: str, meter: Meter, value: int,
                features: tuple[Feature, ...], at: float) -> UsageEvent:
    """The event for one interval of a stream; same inputs, same id."""
    return UsageEvent(
        id=f"{stream_id}-{sequence}",
        source=source,
        subject=customer,
        time=datetime.fromtimestamp(at, UTC),
        data=UsageData(meter=meter, value=value, features=features,
                       stream_id=stream_id),
    )
