"""Chapter 4's `Connection`, over a WebRTC call's track and data channel.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
Chapter 4's stream handler reads frames from a connection (audio as
bytes, client events as text) and sends JSON messages back. Over WebRTC
the two directions travel apart: audio as RTP on the peer connection's
track, events as JSON text on the `oai-events` data channel. This
adapter merges what arrives into one ordered inbox for `recv()`, sends
the handler's messages on the channel, and tells the handler how the
call ended: the client's RTCP BYE ends its input (an empty frame, after
what it sent, so its last words get their finals); a closed channel or
peer connection is a client gone. The inbox is bounded: RTP cannot be
paused, so audio that finds it full is dropped and counted, and a
client that floods it with events is cut off with an `error` event. A
server-side close sends an `error` event with the reason, then closes
the channel.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from aiortc import RTCDataChannel
from websockets.exceptions import ConnectionClosedError
from websockets.protocol import State
from websockets.typing import Data

from ch04_streaming.backpressure import SlowConsumerError
from ch04_streaming.dialects.openai_events import ErrorEvent, RealtimeError
from ch05_protocols.rtc_audio import RATE, SAMPLE_BYTES

# Close codes that are the server's state, not the client's doing.
SERVER_CODES = (1001, 1011, 1013)


@dataclass(frozen=True)
class ChannelLimits:
    inbox: int = 500  # frames and events unread: 10 s of 20 ms audio
    max_event_bytes: int = 64 * 1024
    max_buffered_bytes: int = 1024 * 1024  # sent, not yet acknowledged
    send_timeout_s: float = 5.0  # for that to drain below half
    close_timeout_s: float = 2.0  # for the last event to leave


def error_event(code: str, message: str,
                kind: str = "invalid_request_error") -> ErrorEvent:
    """OpenAI's realtime `error` event, for what the transport refuses."""
    return ErrorEvent(error=RealtimeError(type=kind, code=code,
                                          message=message))


def closing_event(code: int, reason: str) -> ErrorEvent:
    """The last event of a call the server ends: its close code and
    reason, which a data channel's own close cannot carry."""
    kind = ("server_error" if code in SERVER_CODES
            else "invalid_request_error")
    return error_event("session_closed", f"{code} {reason}", kind)


@dataclass(eq=False)
class DataChannelConnection:
    channel: RTCDataChannel
    limits: ChannelLimits = field(default_factory=ChannelLimits)
    input_ended: bool = False  # the client's RTCP BYE came
    dropped_s: float = 0.0  # audio that found the inbox full
    _state: State = State.OPEN
    _gone: bool = False  # the client left: nothing more to read
    _inbox: deque[str | bytes] = field(default_factory=deque)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _drained: asyncio.Event = field(default_factory=asyncio.Event)
    _closed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.channel.on("message", self.event)
        self.channel.on("close", self.lost)
        self.channel.on("bufferedamountlow", self._drained.set)
        self.channel.bufferedAmountLowThreshold = (
            self.limits.max_buffered_bytes // 2)

    @property
    def state(self) -> State:
        return self._state

    def audio(self, pcm: bytes) -> None:
        """PCM from the track; an empty chunk is nothing to read."""
        if not pcm:
            return
        if len(self._inbox) >= self.limits.inbox:
            self.dropped_s += len(pcm) / (RATE * SAMPLE_BYTES)
            return
        self._put(pcm)

    def event(self, message: str | bytes) -> None:
        """A data channel message: a client event, if it is one."""
        if isinstance(message, bytes):
            self._refuse("binary messages are not events: send JSON text"
                         " (audio goes on the track)")
        elif len(message.encode()) > self.limits.max_event_bytes:
            self._refuse(f"an event of {len(message.encode())} bytes; at"
                         f" most {self.limits.max_event_bytes}")
        elif len(self._inbox) >= self.limits.inbox:
            self._refuse(f"{self.limits.inbox} messages unread: send"
                         " events more slowly", code="too_many_events")
            self.lost()
        else:
            self._put(message)

    def end_of_input(self) -> None:
        self.input_ended = True
        self._arrived.set()

    def lost(self) -> None:
        """The channel or the peer connection closed."""
        self._gone = True
        self._state = State.CLOSED
        self._closed.set()
        self._arrived.set()

    async def recv(self) -> Data:
        while True:
            if self._gone:
                raise ConnectionClosedError(None, None)
            if self._inbox:
                return self._inbox.popleft()
            if self.input_ended:
                return b""  # the handler's end of input
            self._arrived.clear()
            await self._arrived.wait()  # the idle sweep bounds this

    async def send(self, message: str) -> None:
        if self._state is not State.OPEN or self.channel.readyState != (
                "open"):
            raise ConnectionClosedError(None, None)
        self._drained.clear()
        self.channel.send(message)
        if self.channel.bufferedAmount > self.limits.max_buffered_bytes:
            try:
                async with asyncio.timeout(self.limits.send_timeout_s):
                    await self._drained.wait()
            except TimeoutError:
                raise SlowConsumerError(
                    f"{self.channel.bufferedAmount} bytes unacknowledged"
                    f" for {self.limits.send_timeout_s:g} s: client is"
                    " not reading") from None

    async def close(self, code: int, reason: str) -> None:
        if self._state is not State.OPEN:
            return
        self._state = State.CLOSING
        if reason and self.channel.readyState == "open":
            self.channel.send(closing_event(code, reason).to_json())
        self.channel.close()
        try:
            async with asyncio.timeout(self.limits.close_timeout_s):
                await self._closed.wait()
        except TimeoutError:
            pass  # the peer connection's close ends it anyway
        self._state = State.CLOSED

    def _put(self, item: str | bytes) -> None:
        self._inbox.append(item)
        self._arrived.set()

    def _refuse(self, message: str, code: str = "invalid_event") -> None:
        if self.channel.readyState == "open":
            self.channel.send(error_event(code, message).to_json())
