"""Pacing: how fast, and how slowly, a client may send its audio.

Chapter 4, "Buffering strategies", and the providers' documented limits.
A live microphone sends one chunk per chunk of time; a file can be sent
far faster. AssemblyAI accepts audio well ahead of real time (observed:
about 300 s of look-ahead before it closes with 3007, "Audio
Transmission Rate Exceeded") and wants each chunk to hold 50-1000 ms;
Deepgram enforces neither. Each dialect states its `PacingRules`; the
stream's `Pace` applies them frame by frame, in the provider's words.
At the other end, a client that sends nothing for its idle timeout is
closed, but never while the server itself has stopped reading.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


class PacingError(ValueError):
    """The client broke its dialect's pacing rules; the reason says how."""


@dataclass(frozen=True)
class PacingRules:
    """A dialect's limits on arriving audio; None: no such limit."""

    max_ahead_s: float | None = None  # audio ahead of the wall clock
    chunk_ms: tuple[float, float] | None = None  # a frame's duration


# --8<-- [start:pace]
@dataclass
class Pace:
    """One stream's audio against its dialect's pacing rules."""

    rules: PacingRules
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    received_s: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def check(self, frame_s: float) -> None:
        """Count one frame's audio; PacingError if it breaks a rule."""
        self.received_s += frame_s
        if self.rules.chunk_ms is not None:
            low, high = self.rules.chunk_ms
            if not low <= frame_s * 1000 <= high:
                raise PacingError(
                    f"Input Duration Violation: {frame_s * 1000:.1f} ms."
                    f" Expected between {low:g} and {high:g} ms")
        elapsed = self.clock() - self.started
        limit = self.rules.max_ahead_s
        if limit is not None and self.received_s - elapsed > limit:
            raise PacingError(
                "Input Duration Error: Audio Transmission Rate Exceeded:"
                f" Received {self.received_s:.1f} sec. audio in"
                f" {elapsed:.6f} sec")
# --8<-- [end:pace]


@dataclass
class IdleTimer:
    """Time since the reader began waiting on the client, if it is."""

    timeout_s: float
    clock: Callable[[], float] = time.monotonic
    _since: float | None = field(default=None, init=False)

    def waiting(self) -> None:
        """The reader waits for the client's next frame."""
        self._since = self.clock()

    def busy(self) -> None:
        """The reader has a frame, or waits on the server: not idle."""
        self._since = None

    def expired(self, now: float) -> bool:
        return self._since is not None and now - self._since >= (
            self.timeout_s)
