"""One WebTransport session as chapter 4's `Connection`.

Chapter 5, "WebTransport: QUIC datagrams". The session adapter lets
chapter 4's `StreamHandler` serve a WebTransport session as it serves
a WebSocket: `recv()` gives audio (bytes) and client events (text),
`send()` writes one result, `close()` ends the session. In: client
events, one JSON per line, on the first bidirectional stream the
client opens; audio as datagrams (`audio=datagram`), put in order by
the reassembler, or the same frames on one unidirectional stream
(`audio=stream`). Out: every message, one JSON per line, on a
unidirectional stream the server opens. A datagram or a line that
cannot be read gets an `error` event and the session goes on. The
input ends when the client finishes its events stream (and its audio
stream), datagrams still in flight being waited for a moment; the
handler then sends the last finals, and the close is said in the
results stream's last message before the session itself closes. What
waits for the reader is bounded: past `max_waiting`, datagram audio is
dropped and counted (nothing can slow a datagram's sender), and
anything else closes the session with 1008, since aioquic grants a
stream's flow-control credit as data arrives and cannot make a sender
wait.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from aioquic.h3.connection import H3Connection
from aioquic.quic.connection import QuicConnection, stream_is_unidirectional
from websockets.exceptions import ConnectionClosedError
from websockets.protocol import State

from ch05_protocols.wt_capsules import (
    CapsuleError,
    CapsuleReader,
    close_capsule,
)
from ch05_protocols.wt_frames import (
    FRAME_MS,
    FrameError,
    StreamFrames,
    frame_bytes,
    read_datagram,
)
from ch05_protocols.wt_messages import (
    AudioReport,
    TransportClosed,
    error_event,
)
from ch05_protocols.wt_reassembly import Reassembler, SequenceError


class AudioMode(StrEnum):
    DATAGRAM = "datagram"
    STREAM = "stream"


@dataclass(frozen=True)
class SessionLimits:
    max_waiting: int = 250  # items for the reader: 5 s of 20 ms frames
    reorder_depth: int = 3  # frames a gap waits for its datagram
    max_ahead: int = 500  # frames a sequence number may jump
    max_line_bytes: int = 64 * 1024  # one client event
    max_error_events: int = 32  # sent; more are only counted
    # After the events stream ends, datagrams still in flight (a burst
    # queued behind congestion control) are waited for while they keep
    # coming, until none has come for `end_quiet_s`, `max_end_wait_s`
    # at most.
    end_quiet_s: float = 0.1
    max_end_wait_s: float = 1.0
    # For the client to close the session once the results stream has
    # ended; then the server closes it, with the close capsule.
    close_timeout_s: float = 5.0


class WebTransportSession:
    """Chapter 4's `Connection` over one WebTransport session."""

    def __init__(self, quic: QuicConnection, h3: H3Connection,
                 session_id: int, transmit: Callable[[], None],
                 mode: AudioMode, sample_rate: int,
                 limits: SessionLimits) -> None:
        self.quic, self.h3, self.transmit = quic, h3, transmit
        self.session_id, self.mode, self.limits = session_id, mode, limits
        self.results = h3.create_webtransport_stream(
            session_id, is_unidirectional=True)
        self.frame_bytes = frame_bytes(sample_rate)
        self.reassembler = Reassembler(self.frame_bytes,
                                       limits.reorder_depth,
                                       limits.max_ahead)
        self._stream_frames = StreamFrames(self.frame_bytes)
        self._capsules = CapsuleReader()
        self._inbound: deque[str | bytes] = deque()
        self._arrived = asyncio.Event()
        self._state = State.OPEN
        self._input_ended = False
        self._events: int | None = None  # the client's events stream
        self._audio: int | None = None  # its audio stream, if any
        self._finished: set[int] = set()
        self._refused: set[int] = set()  # streams it should not open
        self._line = b""
        self._end_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._gone = asyncio.Event()  # closed, by either side
        self._end_by = 0.0  # loop time the input ends by, at the latest
        self.errors = 0
        self.dropped = 0

    # What the handler reads: chapter 4's `Connection`.
    @property
    def state(self) -> State:
        return self._state

    @property
    def input_ended(self) -> bool:
        return self._input_ended

    async def recv(self) -> str | bytes:
        while not self._inbound:
            if self._state is not State.OPEN:
                raise ConnectionClosedError(None, None)
            self._arrived.clear()
            await self._arrived.wait()
        if self._state is not State.OPEN:
            raise ConnectionClosedError(None, None)
        return self._inbound.popleft()

    async def send(self, message: str) -> None:
        if self._state is not State.OPEN:
            raise ConnectionClosedError(None, None)
        self._write(message)

    async def close(self, code: int, reason: str) -> None:
        self._close(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Until the session is closed, by the client or, once it has
        had `close_timeout_s` to do so, by the server."""
        await self._gone.wait()

    # What arrives from the QUIC connection.
    def datagram_received(self, data: bytes) -> None:
        if self._state is not State.OPEN or self._input_ended:
            self.reassembler.stats.late += 1  # after the end of input
            return
        if self.mode is not AudioMode.DATAGRAM:
            self._refuse("unexpected_datagram", "this session takes its"
                         " audio on a stream (audio=stream)")
            return
        try:
            frame = read_datagram(data, self.frame_bytes)
            self._place(frame.seq, frame.pcm)
        except FrameError as error:
            self._refuse(error.code, str(error))
        if self._end_timer is not None:  # still coming: wait on
            self._end_timer.cancel()
            self._wait_for_stragglers()

    def stream_data_received(self, stream_id: int, data: bytes,
                             ended: bool) -> None:
        if self._state is not State.OPEN or stream_id in self._refused:
            return
        if stream_is_unidirectional(stream_id):
            if self.mode is AudioMode.STREAM and self._audio in (
                    None, stream_id):
                self._audio = stream_id
                self._audio_data(data, ended)
            else:
                self._refuse_stream(stream_id, "audio comes as datagrams"
                                    if self.mode is AudioMode.DATAGRAM
                                    else "one audio stream a session")
        elif self._events in (None, stream_id):
            self._events = stream_id
            self._event_data(data, ended)
        else:
            self._refuse_stream(stream_id, "client events come on one"
                                " bidirectional stream")

    def session_data_received(self, data: bytes, ended: bool) -> None:
        """Data on the CONNECT stream: the client's close capsule."""
        try:
            closed = self._capsules.feed(data)
        except CapsuleError as error:
            self._close(1008, f"invalid capsule: {error}")
            return
        if closed is not None or ended:
            self._end_session(b"")  # the client's close: ours follows

    def connection_lost(self) -> None:
        """The connection went: nothing more can be sent or read."""
        self._set_closed()

    # Reading what arrived.
    def _place(self, seq: int, pcm: bytes) -> None:
        try:
            audio = self.reassembler.push(seq, pcm)
        except SequenceError as error:
            raise FrameError("sequence_out_of_range", str(error)) from None
        if audio:
            self._put(audio)

    def _audio_data(self, data: bytes, ended: bool) -> None:
        try:
            for frame in self._stream_frames.feed(data):
                self._place(frame.seq, frame.pcm)
            if ended:
                self._stream_frames.finish()
        except FrameError as error:
            self._refuse(error.code, str(error))
        if ended and self._audio is not None:
            self._finish(self._audio)

    def _event_data(self, data: bytes, ended: bool) -> None:
        *lines, self._line = (self._line + data).split(b"\n")
        if ended and self._line:
            lines.append(self._line)
            self._line = b""
        for line in lines:
            self._event_line(line.rstrip(b"\r"))
        if len(self._line) > self.limits.max_line_bytes:
            self._event_line(self._line)  # too long already: refused
        elif ended and self._events is not None:
            self._finish(self._events)

    def _event_line(self, line: bytes) -> None:
        if not line.strip() or self._state is not State.OPEN:
            return
        if len(line) > self.limits.max_line_bytes:
            self._close(1009, f"message too big: a line of {len(line)}"
                        f" bytes; at most {self.limits.max_line_bytes}")
            return
        try:
            self._put(line.decode())
        except UnicodeDecodeError:
            self._refuse("invalid_event", "a client event that is not"
                         " UTF-8 text")

    def _put(self, item: str | bytes) -> None:
        if len(self._inbound) < self.limits.max_waiting:
            self._inbound.append(item)
            self._arrived.set()
        elif isinstance(item, bytes) and self.mode is AudioMode.DATAGRAM:
            self.dropped += len(item) // self.frame_bytes
        elif self._state is State.OPEN:
            self._close(1008, f"{self.limits.max_waiting} messages wait"
                        " to be read: send audio at the pace of speech")

    def _finish(self, stream_id: int) -> None:
        """A client stream ended; with all of them, so does the input."""
        self._finished.add(stream_id)
        streams = {self._events}
        if self.mode is AudioMode.STREAM:
            streams.add(self._audio)
        if not streams <= self._finished or self._input_ended:
            return
        if self.mode is AudioMode.DATAGRAM:
            loop = asyncio.get_running_loop()
            self._end_by = loop.time() + self.limits.max_end_wait_s
            self._wait_for_stragglers()
        else:
            self._end_input()

    def _wait_for_stragglers(self) -> None:
        loop = asyncio.get_running_loop()
        wait = min(self.limits.end_quiet_s, self._end_by - loop.time())
        self._end_timer = loop.call_later(max(wait, 0.0), self._end_input)

    def _end_input(self) -> None:
        self._end_timer = None
        if self._state is not State.OPEN:  # closing already
            return
        tail = self.reassembler.flush()
        if tail:
            self._inbound.append(tail)
        self._input_ended = True
        self._inbound.append(b"")  # the handler's end of input
        self._arrived.set()

    def _refuse(self, code: str, message: str) -> None:
        """An error event for what could not be read; then go on."""
        self.errors += 1
        if (self._state is State.OPEN
                and self.errors <= self.limits.max_error_events):
            self._write(error_event(code, message).to_json())

    def _refuse_stream(self, stream_id: int, why: str) -> None:
        self._refused.add(stream_id)
        self._refuse("unexpected_stream", f"stream {stream_id}: {why}")

    # Writing.
    def _write(self, message: str) -> None:
        self.quic.send_stream_data(self.results, message.encode() + b"\n")
        self.transmit()

    def report(self) -> AudioReport:
        stats = self.reassembler.stats
        return AudioReport(
            mode=self.mode.value, frames=stats.received,
            concealed_s=round(stats.concealed * FRAME_MS / 1000, 3),
            late_frames=stats.late, duplicate_frames=stats.duplicates,
            dropped_frames=self.dropped, errors=self.errors)

    # --8<-- [start:webtransport_close]
    def _close(self, code: int, reason: str) -> None:
        """Say why in the results stream's last message and end it; the
        client then closes the session, or the server does, with the
        close capsule, `close_timeout_s` later. A browser errors every
        stream of a session as soon as it closes, unread data and all:
        the server must not close before the client has read."""
        if self._state is not State.OPEN:
            return
        self._state = State.CLOSING
        self._arrived.set()
        self._write(TransportClosed(code=code, reason=reason,
                                    audio=self.report()).to_json())
        self.quic.send_stream_data(self.results, b"", end_stream=True)
        self.transmit()
        self._close_timer = asyncio.get_running_loop().call_later(
            self.limits.close_timeout_s, self._end_session,
            close_capsule(code, reason))

    def _end_session(self, capsule: bytes) -> None:
        """End the CONNECT stream, after `capsule` if there is one."""
        if self._state is State.CLOSED:
            return
        if self._state is State.OPEN:  # the client left: nothing to say
            self.quic.send_stream_data(self.results, b"", end_stream=True)
        self._set_closed()
        self.h3.send_data(self.session_id, capsule, end_stream=True)
        self.transmit()
    # --8<-- [end:webtransport_close]

    def _set_closed(self) -> None:
        self._state = State.CLOSED
        for timer in (self._end_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._arrived.set()
        self._gone.set()
