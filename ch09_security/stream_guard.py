"""Chapter 4's streams behind chapter 9's keys: scope, owner, revocation.

Chapter 9, "Authentication for streaming connections". The streaming
server checks a key before the upgrade (its `KeyCheck` is this
chapter's `KeyVerifier`); these hooks then refuse a key without the
`listen` scope (403), count the key's use, leave the stream's owner in
the connection's context (`stream_owner.py`: a dialect that keeps audio
reads it there), and follow the stream, so that the `KeyWatch` can end
it with 1008 when its key is revoked or expires. Another chapter's
hooks (chapter 8's metering) may sit inside: they see only the streams
this guard admits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ch04_streaming.stream_hooks import (
    DeviceTimeTracker,
    NoHooks,
    Refusal,
    StreamHooks,
    StreamStart,
    StreamTracker,
)
from ch09_security.key_store import Scope
from ch09_security.key_verifier import KeyVerifier
from ch09_security.key_watch import RunningStreams, StreamStop
from ch09_security.stream_owner import StreamOwner, admitted


@dataclass
class GuardedStream:
    """A stream's tracker that its key's revocation can stop."""

    inner: StreamTracker
    stop: StreamStop
    streams: RunningStreams

    async def audio(self, seconds: float) -> str | None:
        return await self.inner.audio(seconds)

    def compute(self, device_s: float) -> None:
        if isinstance(self.inner, DeviceTimeTracker):
            self.inner.compute(device_s)

    async def stopped(self) -> str:
        return await self.stop.stopped()

    async def ended(self) -> None:
        self.streams.remove(self.stop)
        await self.inner.ended()


# --8<-- [start:stream_guard]
@dataclass
class StreamGuard:
    verifier: KeyVerifier
    streams: RunningStreams
    inner: StreamHooks = field(default_factory=NoHooks)

    async def admit(self, start: StreamStart) -> StreamTracker | Refusal:
        verdict = self.verifier.check(start.api_key)
        if verdict.record is None:  # revoked since the upgrade began
            return Refusal(401, verdict.reason)
        if Scope.LISTEN not in verdict.record.scopes:
            return Refusal(403, "this API key lacks the listen scope")
        inner = await self.inner.admit(start)
        if isinstance(inner, Refusal):
            return inner
        self.verifier.count_use(verdict.record)
        admitted(StreamOwner(start.stream_id, verdict.record.owner,
                             verdict.record.key_id))  # for its dialect
        stop = self.streams.add(verdict.record)  # for the KeyWatch
        return GuardedStream(inner, stop, self.streams)
# --8<-- [end:stream_guard]
