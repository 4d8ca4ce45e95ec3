"""The parts of WebRTC ingest, each alone: track to PCM, the jitter-buffer
timer, client secrets, and the data channel adapter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from fractions import Fraction
from typing import Any, cast

import av
import numpy as np
import pytest
from aiortc import RTCDataChannel
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from ch04_streaming.backpressure import SlowConsumerError
from ch04_streaming.stream_handler import Connection, StreamHandler
from ch05_protocols.client_secrets import (
    Check,
    EphemeralKeys,
    SessionConfig,
    StoreFullError,
)
from ch05_protocols.jitter_delay import JitterDelay
from ch05_protocols.rtc_audio import TrackPcm
from ch05_protocols.rtc_calls import CallRefusedError, RtcCalls
from ch05_protocols.rtc_connection import (
    ChannelLimits,
    DataChannelConnection,
)
from tests.ch05.rtc_harness import FakeClock

OPUS_FRAME = 960  # 20 ms at 48 kHz


def decoded(pts: int | None, level: int = 1000) -> av.AudioFrame:
    """A frame as aiortc's Opus decoder makes one: 20 ms, 48 kHz,
    stereo s16, stamped with its RTP timestamp."""
    samples = np.full((1, 2 * OPUS_FRAME), level, np.int16)
    frame = av.AudioFrame.from_ndarray(samples, format="s16",
                                       layout="stereo")
    frame.sample_rate = 48_000
    frame.pts = pts
    frame.time_base = Fraction(1, 48_000)
    return frame


def test_frames_become_24_khz_mono_pcm_at_their_level() -> None:
    pcm = TrackPcm()
    out = b"".join(pcm.convert(decoded(i * OPUS_FRAME)) for i in range(10))
    out += pcm.flush()
    samples = np.frombuffer(out, "<i2")
    assert len(samples) == 10 * 480  # 200 ms at 24 kHz
    assert abs(int(np.median(samples)) - 1000) <= 1  # stereo mixed down
    assert pcm.counts().received_s == 0.2


def test_a_gap_in_the_timestamps_is_filled_with_silence_and_counted(
) -> None:
    pcm = TrackPcm()
    pcm.convert(decoded(0))
    # Two packets lost: the next frame starts 40 ms after this one ends.
    after_gap = pcm.convert(decoded(3 * OPUS_FRAME))
    assert pcm.lost_s == pytest.approx(0.04)
    assert after_gap[:40 * 24 * 2] == bytes(40 * 24 * 2)  # 40 ms silent
    assert len(after_gap) > 40 * 24 * 2  # then the frame's own audio


def test_a_long_gap_is_counted_whole_but_filled_only_so_far() -> None:
    pcm = TrackPcm(max_gap_s=2.0)
    pcm.convert(decoded(0))
    after_jump = pcm.convert(decoded(OPUS_FRAME + 48_000 * 3600))
    assert pcm.lost_s == pytest.approx(3600.0)
    assert len(after_jump) < 2.1 * 24_000 * 2  # 2 s of silence, no more


def test_a_frame_that_came_twice_is_dropped() -> None:
    pcm = TrackPcm()
    pcm.convert(decoded(0))
    pcm.convert(decoded(OPUS_FRAME))
    assert pcm.convert(decoded(OPUS_FRAME)) == b""
    assert pcm.counts().late_frames == 1
    assert pcm.lost_s == 0.0


def test_frames_without_timestamps_are_taken_as_they_come() -> None:
    pcm = TrackPcm()
    assert pcm.convert(decoded(None))
    assert pcm.convert(decoded(None))
    assert pcm.lost_s == 0.0


class StepClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_jitter_delay_times_each_frame_from_its_packet() -> None:
    clock = StepClock()
    delay = JitterDelay(clock)
    first = 2**32 - OPUS_FRAME  # the next timestamp wraps to 0
    for index, timestamp in enumerate((first, 0, OPUS_FRAME)):
        clock.now = 0.02 * index
        delay.packet(timestamp)
    clock.now = 0.08  # released when the fourth frame after it came
    delay.decoded(0)
    clock.now = 0.10
    delay.decoded(OPUS_FRAME)
    delay.decoded(None)  # no timestamp: not timed
    delay.decoded(99 * OPUS_FRAME)  # never arrived: not timed
    summary = delay.summary()
    assert (summary.frames, summary.p50_ms, summary.max_ms) == (2, 80.0,
                                                                80.0)


def test_jitter_delay_forgets_arrivals_never_decoded() -> None:
    clock = StepClock()
    delay = JitterDelay(clock)
    for index in range(1000):
        delay.packet(index * OPUS_FRAME)
    assert len(delay._arrived) == 64
    assert delay.summary().p50_ms is None


def test_a_client_secret_lives_for_its_time_then_expires() -> None:
    clock = FakeClock()
    keys = EphemeralKeys(capacity=10, clock=clock)
    session = SessionConfig(type="transcription")
    value, issued = keys.issue(60, session)
    assert value.startswith("ek_")
    assert issued.expires_at == clock.now + 60
    assert keys.check(value) == (Check.LIVE, issued)
    clock.now += 60
    assert keys.check(value)[0] is Check.EXPIRED
    assert keys.check("ek_not-issued") == (Check.UNKNOWN, None)


def test_a_full_store_forgets_the_expired_but_never_a_live_secret(
) -> None:
    clock = FakeClock()
    keys = EphemeralKeys(capacity=2, clock=clock)
    short, _ = keys.issue(10, None)
    long, _ = keys.issue(100, None)
    with pytest.raises(StoreFullError):
        keys.issue(10, None)
    clock.now += 10  # the short one has expired: its slot is free
    new, _ = keys.issue(10, None)
    assert keys.check(short)[0] is Check.UNKNOWN
    assert keys.check(long)[0] is keys.check(new)[0] is Check.LIVE
    assert len(keys) == 2


class FakeChannel:
    """What the adapter uses of an `RTCDataChannel`."""

    def __init__(self) -> None:
        self.readyState = "open"
        self.bufferedAmount = 0
        self.bufferedAmountLowThreshold = 0
        self.sent: list[dict[str, Any]] = []
        self.handlers: dict[str, Callable[..., None]] = {}

    def on(self, event: str, handler: Callable[..., None]) -> None:
        self.handlers[event] = handler

    def send(self, message: str) -> None:
        self.sent.append(json.loads(message))

    def close(self) -> None:
        self.readyState = "closed"
        self.handlers["close"]()


def adapter(channel: FakeChannel, **limits: Any) -> DataChannelConnection:
    return DataChannelConnection(cast(RTCDataChannel, channel),
                                 ChannelLimits(**limits))


async def test_audio_and_events_are_read_in_order_then_the_end() -> None:
    channel = FakeChannel()
    connection = adapter(channel)
    connection.audio(b"\x01\x00" * 480)
    connection.audio(b"")  # nothing to read: not an end of input
    channel.handlers["message"]('{"type": "input_audio_buffer.commit"}')
    connection.end_of_input()
    async with asyncio.timeout(1):
        frames = [await connection.recv() for _ in range(3)]
    assert frames == [b"\x01\x00" * 480,
                      '{"type": "input_audio_buffer.commit"}', b""]
    assert connection.input_ended and connection.state is State.OPEN


async def test_a_binary_or_oversized_message_is_answered_not_read(
) -> None:
    channel = FakeChannel()
    connection = adapter(channel, max_event_bytes=100)
    channel.handlers["message"](b"\x00\x01")
    channel.handlers["message"]('{"type": "x", "pad": "' + 100 * "a" + '"}')
    assert [e["error"]["code"] for e in channel.sent] == [
        "invalid_event", "invalid_event"]
    assert "binary messages are not events" in (
        channel.sent[0]["error"]["message"])
    assert "at most 100" in channel.sent[1]["error"]["message"]
    assert connection.state is State.OPEN


async def test_audio_that_finds_the_inbox_full_is_dropped_and_counted(
) -> None:
    connection = adapter(FakeChannel(), inbox=2)
    for _ in range(3):
        connection.audio(bytes(960))  # 20 ms at 24 kHz
    assert connection.dropped_s == pytest.approx(0.02)


async def test_a_client_flooding_events_is_cut_off() -> None:
    channel = FakeChannel()
    connection = adapter(channel, inbox=2)
    for _ in range(3):
        channel.handlers["message"]('{"type": "session.update"}')
    assert channel.sent[-1]["error"]["code"] == "too_many_events"
    assert connection.state is State.CLOSED
    with pytest.raises(ConnectionClosed):
        await connection.recv()


async def test_a_server_close_says_why_then_closes_the_channel() -> None:
    channel = FakeChannel()
    connection = adapter(channel)
    await connection.close(1001, "server shutting down")
    await connection.close(1001, "server shutting down")  # once only
    assert channel.sent == [{
        "type": "error", "event_id": channel.sent[0]["event_id"],
        "error": {"type": "server_error", "code": "session_closed",
                  "message": "1001 server shutting down", "param": None,
                  "event_id": None}}]
    assert channel.readyState == "closed"
    assert connection.state is State.CLOSED
    with pytest.raises(ConnectionClosed):
        await connection.send('{"type": "late"}')


async def test_a_client_that_reads_nothing_is_a_slow_consumer() -> None:
    channel = FakeChannel()
    connection = adapter(channel, max_buffered_bytes=10,
                         send_timeout_s=0.01)
    channel.bufferedAmount = 11  # nothing acknowledged
    with pytest.raises(SlowConsumerError, match="not reading"):
        await connection.send('{"type": "x"}')


def no_handler(connection: Connection) -> StreamHandler:
    raise AssertionError("no call may start")


def test_calls_are_refused_while_loading_draining_or_full() -> None:
    ready = False
    calls = RtcCalls(no_handler, lambda: ready, max_calls=0)
    with pytest.raises(CallRefusedError, match=r"^model loading$"):
        calls.check_admission()
    ready = True
    with pytest.raises(CallRefusedError, match=r"^at capacity: 0 calls$"):
        calls.check_admission()
    calls.draining = True
    with pytest.raises(CallRefusedError, match=r"^server is draining$"):
        calls.check_admission()
