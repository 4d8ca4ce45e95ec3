"""Sync, streaming or long-running: the chapter's decision, as code.

Chapter 7, "Synchronous vs asynchronous API patterns". How long the
work takes decides how the API should answer: under a second, wait for
it (a synchronous response is simplest for everyone); up to half a
minute, stream it, so the client sees progress and no proxy times out
an idle connection; beyond that, return a long-running operation the
client polls (AIP-151), because no HTTP connection should be held that
long. Audio length stands in for the work: the model's time is
proportional to it.
"""

from __future__ import annotations

from enum import StrEnum


class ApiMode(StrEnum):
    SYNC = "sync"
    STREAMING = "streaming"
    LONG_RUNNING = "long_running"


# --8<-- [start:api_mode_decision]
SYNC_UNDER_S = 1.0  # answer in the request
LONG_RUNNING_OVER_S = 30.0  # hand back an operation to poll


def choose_mode(audio_s: float, client_streams: bool) -> ApiMode:
    """How to answer a request for `audio_s` of audio."""
    if audio_s > LONG_RUNNING_OVER_S:
        return ApiMode.LONG_RUNNING
    if audio_s < SYNC_UNDER_S or not client_streams:
        return ApiMode.SYNC  # a client that cannot stream waits
    return ApiMode.STREAMING
# --8<-- [end:api_mode_decision]
