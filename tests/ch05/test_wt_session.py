"""The session adapter on its own, over a recorded QUIC connection.

Chapter 5, "WebTransport: QUIC datagrams". What the client sends is fed
to a `WebTransportSession` as aioquic would hand it over; what the
session writes is recorded. So the cases a real connection cannot
stage on demand are tested here: a reader that falls behind, a stream
cut inside a frame, a second events stream, the close said twice.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from ch05_protocols.wt_capsules import CapsuleReader, close_capsule
from ch05_protocols.wt_frames import pack_frame
from ch05_protocols.wt_session import (
    AudioMode,
    SessionLimits,
    WebTransportSession,
)

RESULTS = 3  # the server's first unidirectional stream
EVENTS = 4  # the client's first bidirectional stream
AUDIO = 2  # the client's first unidirectional stream
FRAME = bytes(960)  # 20 ms at 24 kHz


@dataclass
class Wire:
    """What the session writes, by stream; and whether it ended."""

    data: dict[int, bytes] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)

    def create_webtransport_stream(self, session_id: int,
                                   is_unidirectional: bool) -> int:
        return RESULTS

    def send_stream_data(self, stream_id: int, data: bytes,
                         end_stream: bool = False) -> None:
        assert stream_id not in self.ended, "written after its end"
        self.data[stream_id] = self.data.get(stream_id, b"") + data
        if end_stream:
            self.ended.add(stream_id)

    def send_data(self, stream_id: int, data: bytes,
                  end_stream: bool) -> None:
        self.send_stream_data(stream_id, data, end_stream)

    def messages(self) -> list[dict[str, Any]]:
        lines = self.data.get(RESULTS, b"").splitlines()
        return [json.loads(line) for line in lines]

    def codes(self) -> list[str]:
        return [m["error"]["code"] for m in self.messages()
                if m["type"] == "error"]


def session(mode: AudioMode, **limits: Any) -> tuple[WebTransportSession,
                                                      Wire]:
    wire = Wire()
    wired = cast(Any, wire)
    return WebTransportSession(wired, wired, 0, lambda: None, mode, 24_000,
                               SessionLimits(**limits)), wire


async def received(adapter: WebTransportSession) -> list[str | bytes]:
    """Everything the handler would read, to the end of input."""
    items = []
    async with asyncio.timeout(5):
        while (item := await adapter.recv()) != b"":
            items.append(item)
    assert adapter.input_ended
    return items


async def test_datagram_audio_past_the_cap_is_dropped_and_counted() -> None:
    adapter, wire = session(AudioMode.DATAGRAM, max_waiting=2)
    for seq in range(5):  # nothing read meanwhile
        adapter.datagram_received(pack_frame(seq, FRAME))
    adapter.stream_data_received(EVENTS, b"", True)
    assert await received(adapter) == [FRAME, FRAME]
    assert adapter.report().dropped_frames == 3
    assert adapter.state is State.OPEN  # nothing can slow datagrams
    assert wire.messages() == []


async def test_stream_audio_past_the_cap_closes_the_session() -> None:
    adapter, wire = session(AudioMode.STREAM, max_waiting=2)
    adapter.stream_data_received(
        AUDIO, b"".join(pack_frame(seq, FRAME) for seq in range(3)), False)
    assert adapter.state is State.CLOSING
    last = wire.messages()[-1]
    assert (last["type"], last["code"]) == ("webtransport.closed", 1008)
    assert last["reason"].startswith("2 messages wait to be read")
    assert RESULTS in wire.ended
    with pytest.raises(ConnectionClosed):
        await adapter.recv()


async def test_a_stream_cut_inside_a_frame_gets_an_error_event() -> None:
    adapter, wire = session(AudioMode.STREAM)
    adapter.stream_data_received(EVENTS, b'{"type": "KeepAlive"}', True)
    adapter.stream_data_received(AUDIO, pack_frame(0, FRAME)[:500], True)
    # The last line, without its newline, is read at the stream's end.
    assert await received(adapter) == ['{"type": "KeepAlive"}']
    assert wire.codes() == ["invalid_audio_frame"]


async def test_a_second_events_stream_is_refused_once() -> None:
    adapter, wire = session(AudioMode.DATAGRAM)
    adapter.stream_data_received(EVENTS, b'{"type": "a"}\n', False)
    adapter.stream_data_received(EVENTS + 4, b'{"type": "b"}\n', False)
    adapter.stream_data_received(EVENTS + 4, b'{"type": "c"}\n', True)
    adapter.stream_data_received(EVENTS, b"", True)
    assert await received(adapter) == ['{"type": "a"}']
    assert wire.codes() == ["unexpected_stream"]


async def test_datagrams_after_the_end_of_input_are_late() -> None:
    adapter, wire = session(AudioMode.DATAGRAM, end_quiet_s=0.0)
    adapter.datagram_received(pack_frame(1, FRAME))  # 0 never comes
    adapter.stream_data_received(EVENTS, b"", True)
    assert await received(adapter) == [bytes(960) + FRAME]  # 0 concealed
    adapter.datagram_received(pack_frame(0, FRAME))
    assert adapter.report().late_frames == 1
    assert wire.messages() == []  # late is no error


async def test_error_events_are_capped_then_only_counted() -> None:
    adapter, wire = session(AudioMode.DATAGRAM, max_error_events=2)
    for _ in range(5):
        adapter.datagram_received(b"\0")
    assert wire.codes() == ["datagram_too_short"] * 2
    assert adapter.report().errors == 5


async def test_a_close_said_twice_is_said_once() -> None:
    adapter, wire = session(AudioMode.DATAGRAM, close_timeout_s=0.0)
    await asyncio.gather(adapter.close(1000, ""), adapter.close(1011, "x"))
    closes = [m for m in wire.messages()
              if m["type"] == "webtransport.closed"]
    assert [m["code"] for m in closes] == [1000]
    # No close from the client in time: the server's capsule, then FIN.
    assert CapsuleReader().feed(wire.data[0]) is not None
    assert wire.ended == {RESULTS, 0}
    assert adapter.state is State.CLOSED


async def test_the_clients_close_capsule_then_its_fin() -> None:
    adapter, wire = session(AudioMode.DATAGRAM)
    adapter.session_data_received(close_capsule(0, "bye"), False)
    adapter.session_data_received(b"", True)  # after the close: nothing
    assert adapter.state is State.CLOSED
    assert wire.data == {RESULTS: b"", 0: b""}  # both ended, no message
    assert wire.ended == {RESULTS, 0}
    await adapter.wait_closed()


async def test_a_capsule_too_large_closes_the_session() -> None:
    adapter, wire = session(AudioMode.DATAGRAM)
    adapter.session_data_received(b"\x01\x80\x01\x00\x00", False)
    last = wire.messages()[-1]
    assert (last["code"], last["reason"]) == (
        1008, "invalid capsule: a capsule of 65536 bytes")
