"""Usage events: CloudEvents-shaped, parsed once at the edge.

Chapter 8, "Idempotent event collection". A usage event says who used
how much of what, and when it happened (event time, not the time it
reached us, so late usage lands in the right invoice period). Its `id`
is deterministic (stream id + sequence), so a sender that retries sends
the same event again and the ledger can recognise it. Values are whole
numbers (milliseconds, characters, tokens, calls): Stripe meters accept no
fractions, and sums of integers never drift. Each value is bounded by
its meter (`MAX_VALUE`), so no sum of a customer's events can overflow
the ledger's 64-bit integers and stop the roll-up for everyone. Names
(id, source, customer, stream) are printable text: a control character
or a lone surrogate rejects its event here, before any database can
store it, refuse it or fail on it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

EVENT_TYPE = "com.speechapi.usage.v1"
# What is metered: audio received, characters and tokens of other
# products, a stream's accelerator time, and the API calls it made.
Meter = Literal["audio_ms", "characters", "tokens", "compute_ms",
                "api_calls"]
Feature = Literal["pii_redaction", "diarization", "summarization"]
# C0 and C1 control characters: PostgreSQL refuses NUL in text and
# SQLite keeps it, and the others forge lines in logs and audit trails.
# (Lone surrogates, which UTF-8 cannot encode, pydantic refuses itself.)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(name: str) -> str:
    """The name, if it is text any database stores and any log shows."""
    if found := CONTROL.search(name):
        raise ValueError(f"U+{ord(found.group()):04X} at {found.start()}"
                         " is a control character; names must be"
                         " printable text")
    return name


Name = Annotated[str, Field(min_length=1, max_length=200),
                 AfterValidator(printable)]
VALID_ID = TypeAdapter(Name)
EventKey = tuple[str, str, str]  # (customer, source, id)

# The most one event may report: a day of audio or of device time, a
# billion characters or tokens, a million API calls. Sums of 10^11 such
# events still fit a signed 64-bit integer.
MAX_VALUE: Mapping[str, int] = {"audio_ms": 86_400_000,
                                "characters": 10**9, "tokens": 10**9,
                                "compute_ms": 86_400_000,
                                "api_calls": 10**6}
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
    def key(self) -> EventKey:
        """The ledger's identity of the event: CloudEvents makes `id`
        unique within its `source`, and the pair is scoped by customer,
        so no customer can claim, or learn of, another's ids."""
        return (self.subject, self.source, self.id)

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
    try:
        event = UsageEvent.model_validate(raw)
    except ValidationError as error:
        return Rejected(given_id(raw), describe(error))
    if event.subject not in customers:
        return Rejected(event.id, f"unknown customer {event.subject!r}")
    if problem := window_problem(event.time, now):
        return Rejected(event.id, f"event time is {problem}, outside"
                        " the window Stripe bills")
    return event


def given_id(raw: object) -> str | None:
    """The id as sent, to answer with, if it is a valid one: the answer
    is UTF-8 JSON, which cannot hold every string a sender can send."""
    try:
        return VALID_ID.validate_python(
            raw.get("id") if isinstance(raw, dict) else None)
    except ValidationError:
        return None


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
                features: tuple[Feature, ...], at: float,
                series: str = "") -> UsageEvent:
    """The event for one interval of a stream; same inputs, same id.

    A stream's audio events are `<stream>-<n>`; a `series` (another
    meter of the same stream) numbers its own: `<stream>-<series>-<n>`.
    """
    tag = f"{series}-" if series else ""
    return UsageEvent(
        id=f"{stream_id}-{tag}{sequence}",
        source=source,
        subject=customer,
        time=datetime.fromtimestamp(at, UTC),
        data=UsageData(meter=meter, value=value, features=features,
                       stream_id=stream_id),
    )
