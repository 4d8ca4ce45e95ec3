"""Whose stream this connection carries, for the code that serves it.

Chapter 9, "Securing audio data: encryption at rest". Chapter 4 shows
a stream's key to its hooks and its query to its dialect, never both to
either. A dialect that keeps a stream's audio must still know whose it
is, to seal it under that owner's key. The WebSocket server runs one
asyncio task per connection, and in it, in this order: the dialect
parses the query, the hooks admit the stream, the dialect opens its
stream. A `ContextVar` is per task, so the `StreamGuard` leaves the
admitted stream's owner in the connection's context, and the dialect
reads it when it opens the stream: no table to clean up, no change to
chapter 4, and another connection can never see it.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamOwner:
    stream_id: str  # chapter 4's id for the stream
    owner: str  # the customer its API key belongs to
    key_id: str


_admitted: ContextVar[StreamOwner | None] = ContextVar("stream_owner",
                                                       default=None)


def admitted(owner: StreamOwner) -> None:
    """The hooks admitted this connection's stream for `owner`."""
    _admitted.set(owner)


def stream_owner() -> StreamOwner | None:
    """The owner of this connection's stream; None before admission,
    or with no guard in front."""
    return _admitted.get()
