"""Stream-lifecycle hooks: how later chapters plug into the session core.

Chapter 4's server knows nothing of billing or quotas, yet chapter 8
meters every stream and limits it by its customer's tier. The server
calls `StreamHooks` at three points: before the upgrade (`admit`, which
may refuse), for every audio frame (`audio`, which may stop the
stream), and when the stream has ended (`ended`). A tracker that also
counts device time (`DeviceTimeTracker`: chapter 8 meters it) is told
each decode's share of the accelerator's time; others are not asked.
A tracker that can stop its stream (`StoppableTracker`: chapter 9's,
when the stream's key is revoked) is watched while the stream runs.
Chapter 4 ships `NoHooks`; chapter 8 composes its own without chapter
4 importing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class StreamStart:
    """What the server knows of a stream when it is admitted."""

    stream_id: str  # unique, also the prefix of its usage-event ids
    api_key: str
    query: Mapping[str, str]  # as the client sent it
    # Request headers (gRPC: metadata), names in lower case: chapter 6
    # reads a W3C `traceparent` here.
    headers: Mapping[str, str] = field(default_factory=dict)
    # Headers the hooks want on the reply that admits the stream (the
    # 101 response; gRPC: initial metadata), such as a service level.
    reply_headers: dict[str, str] = field(default_factory=dict)
    # Channels transcribed one by one (Deepgram's multichannel), as
    # parsed: providers bill each channel's audio.
    transcribed_channels: int = 1


@dataclass(frozen=True)
class Refusal:
    """An admission refused before the upgrade: HTTP status and why."""

    status: int
    reason: str
    retry_after_s: float | None = None


class StreamTracker(Protocol):
    """One admitted stream, as the hooks follow it."""

    async def audio(self, seconds: float) -> str | None:
        """Count a frame's audio; a reason to stop the stream, or None."""

    async def ended(self) -> None:
        """The stream is over, however it ended; called once."""


@runtime_checkable
class DeviceTimeTracker(Protocol):
    """A tracker that also counts the stream's accelerator time."""

    def compute(self, device_s: float) -> None:
        """A decode of this stream took `device_s` of device time."""


@dataclass(frozen=True)
class Stop:
    """Why a stream must end now: its credential is no longer valid,
    or (`expired`) its credential's session time is up."""

    reason: str
    expired: bool = False


@runtime_checkable
class StoppableTracker(Protocol):
    """A tracker that may end its stream from outside, frames or none:
    chapter 9 ends the streams of a key revoked on any replica."""

    async def stopped(self) -> Stop:
        """Return when the stream must end, and why."""


# A callback protocol rather than a Callable: mypy takes an attribute
# of Callable type for a method, which no protocol may set, and the
# handler sets its session's `device_time` through chapter 4's `Session`.
class DeviceTime(Protocol):
    """Where a stream's decodes report their device time."""

    def __call__(self, device_s: float) -> None: ...


def ignore_device_time(device_s: float) -> None:
    return None


def device_time_of(tracker: StreamTracker) -> DeviceTime:
    """Where a stream's device time goes: its tracker, if it counts it."""
    if isinstance(tracker, DeviceTimeTracker):
        return tracker.compute
    return ignore_device_time


class StreamHooks(Protocol):
    async def admit(self, start: StreamStart) -> StreamTracker | Refusal:
        """Follow the stream, or refuse it before the upgrade."""


class NoTracker:
    async def audio(self, seconds: float) -> str | None:
        return None

    async def ended(self) -> None:
        return None


class NoHooks:
    """Chapter 4 alone: every stream admitted, nothing counted."""

    async def admit(self, start: StreamStart) -> StreamTracker | Refusal:
        return NoTracker()
