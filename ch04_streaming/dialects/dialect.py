"""What a wire dialect is: the thin layer between a socket and a session.

Chapter 4, "Reference architectures from production providers". Deepgram
and AssemblyAI stream the same audio and return the same kind of
results, but name, shape and close their messages differently. A
`Dialect` parses the upgrade request into a typed `StreamRequest`, and
opens one `DialectStream` per connection, which turns session events into
that provider's typed messages. A dialect reads each frame into audio,
a `Control` or the reason it refuses it: binary frames are audio and
text frames controls in both providers' dialects, and one parser reads
every dialect's control messages into `Control`s, each dialect naming
its own; chapter 5's base64 dialect carries audio in text frames, and
OpenAI's answers events (`ClientEvent`) without ending the stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from ch04_streaming.audio import SUPPORTED_RATES, Encoding
from ch04_streaming.backpressure import Backpressure
from ch04_streaming.containers import Container
from ch04_streaming.pacing import PacingRules
from ch04_streaming.session import SessionEvent, SessionStats, StreamOptions
from ch04_streaming.vad import VadConfig
from ch04_streaming.wire import WireMessage


class Control(StrEnum):
    KEEP_ALIVE = "keep_alive"
    FINALIZE = "finalize"
    CLOSE = "close"


class RequestError(ValueError):
    """The upgrade request is invalid: HTTP 400 with this reason."""


class ControlError(ValueError):
    """A text frame is not a control message this dialect knows."""


@dataclass(frozen=True)
class Closing:
    code: int
    reason: str

    def because(self, detail: str) -> Closing:
        # A close reason must fit 123 bytes on the wire.
        text = f"{self.reason}: {detail}" if self.reason else detail
        return Closing(self.code, text.encode()[:123].decode(errors="ignore"))


@dataclass(frozen=True)
class StreamDefaults:
    """The server's settings that a client may override per stream."""

    vad: VadConfig = field(default_factory=VadConfig)
    idle_timeout_s: float = 10.0


@dataclass(frozen=True)
class StreamRequest:
    """The client's stream settings, parsed once at the edge."""

    encoding: Encoding
    sample_rate: int
    options: StreamOptions
    vad: VadConfig
    idle_timeout_s: float
    format_turns: bool = False
    # What to do when undecoded audio reaches its cap (chapter 5).
    backpressure: Backpressure = Backpressure.BUFFER
    channels: int = 1  # interleaved in each frame
    multichannel: bool = False  # each channel transcribed on its own
    # The containers a stream's first bytes may open (`containers.py`),
    # whose own header then says the rate; none: raw audio as declared.
    # With `container_required`, raw audio is refused.
    containers: frozenset[Container] = frozenset()
    container_required: bool = False

    @property
    def transcribed_channels(self) -> int:
        """Channels with transcripts of their own: 1 when the stream's
        channels are mixed down."""
        return self.channels if self.multichannel else 1


@dataclass(frozen=True)
class CloseCodes:
    bad_audio: Closing
    bad_control: Closing
    idle: Closing
    slow_consumer: Closing
    pacing: Closing  # broke the dialect's `PacingRules`
    expired: Closing  # open longer than the longest session
    shutdown: Closing = Closing(1001, "server shutting down")
    done: Closing = Closing(1000, "")
    # A usage limit of the customer's tier (chapter 8): 4029, from the
    # private range, because neither provider documents a code for it.
    over_limit: Closing = Closing(4029, "usage limit")
    # The stream's credential was revoked or expired while it ran
    # (chapter 9): 1008, policy violation, as OWASP advises.
    revoked: Closing = Closing(1008, "credential no longer valid")


@dataclass(frozen=True)
class ClientEvent:
    """A text frame the stream answers itself, and goes on: OpenAI's
    `session.update`, a commit, or an event it refuses."""

    event: BaseModel  # the dialect's own typed event


@dataclass(frozen=True)
class Answer:
    messages: list[WireMessage]
    control: Control | None = None  # what the event asks of the session


# What a frame is to a dialect: audio, a control, an event its stream
# answers, or why it is refused.
Inbound = bytes | Control | ClientEvent | Closing


class DialectStream(Protocol):
    """Per-connection dialect state: ids, counters, hashes."""

    def opening(self) -> list[WireMessage]: ...

    def on_audio(self, payload: bytes) -> None: ...

    def encode(self, event: SessionEvent) -> list[WireMessage]: ...

    def closing(self, stats: SessionStats) -> list[WireMessage]: ...


@runtime_checkable
class AnsweringStream(DialectStream, Protocol):
    """The stream of a dialect whose frames may be `ClientEvent`s."""

    def answer(self, event: ClientEvent) -> Answer: ...


class Dialect(Protocol):
    name: str  # stable, for code and metrics: "deepgram"
    label: str  # for people, as the browser page lists it: "Deepgram"
    path: str
    codes: CloseCodes
    controls: Mapping[str, Control]  # control message `type` -> meaning
    pacing: PacingRules

    def credential(self, headers: Mapping[str, str],
                   query: Mapping[str, str]) -> str | None: ...

    def error_headers(self, reason: str) -> dict[str, str]:
        """The provider's own error headers on a refused upgrade."""

    def parse(self, query: Mapping[str, str],
              defaults: StreamDefaults) -> StreamRequest: ...

    def read_frame(self, frame: str | bytes) -> Inbound:
        """One WebSocket frame: audio, a control, or a refusal."""

    def open_stream(self, request: StreamRequest) -> DialectStream: ...


class ControlFrame(BaseModel):
    type: str


def parse_control(text: str, controls: Mapping[str, Control]) -> Control:
    """Any dialect's text frame -> a `Control`, or ControlError."""
    try:
        kind = ControlFrame.model_validate_json(text).type
    except (ValueError, ValidationError, RecursionError):
        kind = None
    if kind is None or kind not in controls:
        names = ", ".join(controls)
        raise ControlError(
            f"expected a JSON control message with type {names}")
    return controls[kind]


def read_binary_frame(frame: str | bytes, controls: Mapping[str, Control],
                      codes: CloseCodes) -> Inbound:
    """Binary frames are audio as sent; text frames are controls."""
    if isinstance(frame, bytes):
        return frame
    try:
        return parse_control(frame, controls)
    except ControlError as error:
        return codes.bad_control.because(str(error))


def parse_bool(query: Mapping[str, str], name: str, default: bool) -> bool:
    """Booleans in any case: SDKs send `true`, `True` or `1`."""
    raw = query.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise RequestError(f"{name} must be true or false, not {raw!r}")


def parse_int(
    query: Mapping[str, str], name: str, default: int | None,
    low: int, high: int,
) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RequestError(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise RequestError(f"{name} must be from {low} to {high}")
    return value


def parse_rate(query: Mapping[str, str], default: int) -> int:
    rate = parse_int(query, "sample_rate", default, 1, 10**6)
    if rate not in SUPPORTED_RATES:
        supported = ", ".join(map(str, SUPPORTED_RATES))
        raise RequestError(f"sample_rate must be one of {supported}")
    return rate
