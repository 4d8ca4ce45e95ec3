"""Chapter 4's streams behind chapter 9's credentials: scope, owner,
single use, session length, revocation.

Chapter 9, "Authentication for streaming connections". The streaming
server checks a credential before the upgrade (its `KeyCheck` is this
chapter's `Credentials`); these hooks then apply the abuse limits
that need the credential's owner (a page's `Origin`, 403; the key's
rate of new streams, 429: `abuse_limits.py`), refuse a credential
without the `listen` scope (403), redeem a single-use token (a second
connection with it is refused 401, on any replica), count the key's
use, leave the stream's owner in the connection's context
(`stream_owner.py`: a dialect that keeps audio reads it there), and
follow the stream: the `KeyWatch` ends it with 1008 when its key is
revoked or expires, and a token's `max_session_s` ends it as an
expired session. Another chapter's hooks (chapter 8's metering) may
sit inside: they see only the streams this guard admits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ch04_streaming.stream_hooks import (
    DeviceTimeTracker,
    NoHooks,
    Refusal,
    Stop,
    StreamHooks,
    StreamStart,
    StreamTracker,
)
from ch09_security.abuse_limits import AbuseLimits
from ch09_security.credentials import Credentials
from ch09_security.key_store import Scope
from ch09_security.key_verifier import Verdict
from ch09_security.key_watch import RunningStreams, StreamStop
from ch09_security.redemptions import Redemptions
from ch09_security.stream_owner import StreamOwner, admitted


@dataclass
class GuardedStream:
    """A stream's tracker that its key's revocation can stop."""

    inner: StreamTracker
    stop: StreamStop
    streams: RunningStreams
    timer: asyncio.TimerHandle | None = None  # the session's end

    async def audio(self, seconds: float) -> str | None:
        return await self.inner.audio(seconds)

    def compute(self, device_s: float) -> None:
        if isinstance(self.inner, DeviceTimeTracker):
            self.inner.compute(device_s)

    async def stopped(self) -> Stop:
        return await self.stop.stopped()

    async def ended(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.streams.remove(self.stop)
        await self.inner.ended()


# --8<-- [start:stream_guard]
@dataclass
class StreamGuard:
    credentials: Credentials
    streams: RunningStreams
    redemptions: Redemptions
    limits: AbuseLimits
    inner: StreamHooks = field(default_factory=NoHooks)

    async def admit(self, start: StreamStart) -> StreamTracker | Refusal:
        verdict = self.credentials.check(start.api_key)
        if verdict.record is None:  # revoked since the upgrade began
            return Refusal(401, verdict.reason)
        if refused := self.limits.check(start, verdict.record.key_id):
            return refused
        if Scope.LISTEN not in verdict.scopes:
            return Refusal(403, "this credential lacks the listen scope")
        if refused := self._redeem(verdict):
            return refused
        inner = await self.inner.admit(start)
        if isinstance(inner, Refusal):
            return inner
        self.credentials.keys.count_use(verdict.record)
        admitted(StreamOwner(start.stream_id, verdict.record.owner,
                             verdict.record.key_id))  # for its dialect
        stop = self.streams.add(verdict.record)  # for the KeyWatch
        return GuardedStream(inner, stop, self.streams,
                             self._session_timer(verdict, stop))
# --8<-- [end:stream_guard]

    def _redeem(self, verdict: Verdict) -> Refusal | None:
        token = verdict.token
        if token is None or not token.single_use:
            return None
        if self.redemptions.redeem(token.jti, token.expires_at_s):
            return None
        return Refusal(401, "invalid token: already used")

    @staticmethod
    def _session_timer(verdict: Verdict, stop: StreamStop
                       ) -> asyncio.TimerHandle | None:
        limit = verdict.token.max_session_s if verdict.token else None
        if limit is None:
            return None
        return asyncio.get_running_loop().call_later(
            limit, stop.stop, "maximum session duration", True)
