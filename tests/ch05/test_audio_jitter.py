"""The audio jitter buffer: a lost packet costs its own 20 ms only.

The same packets go through aiortc's buffer and ours: one Opus packet a
20 ms frame, numbered and stamped as a sender does, some never sent.
Without loss the two release the same frames at the same arrivals. With
a loss, aiortc's waits until 16 packets pile up behind the hole, drops
the frames before it and stays that far behind; ours gives the hole up
after four, and every packet that arrived is released.
"""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from ch05_protocols.audio_jitter import (
    CAPACITY,
    PREFETCH,
    GapSkippingJitterBuffer,
    install,
)

STEP = 960  # a 20 ms frame's timestamp step at 48 kHz


def released(buffer: JitterBuffer, lost: set[int], count: int = 200
             ) -> list[tuple[int, int]]:
    """(arrival number, frame number) of each frame the buffer lets go."""
    out = []
    for seq in range(count):
        if seq in lost:
            continue
        packet = RtpPacket(sequence_number=seq, timestamp=seq * STEP,
                           payload=bytes([seq % 256]))
        packet._data = packet.payload  # type: ignore[attr-defined]
        # (the receiver sets it: the payload, depacketised)
        _, frame = buffer.add(packet)
        if frame is not None:
            out.append((seq, frame.timestamp // STEP))
    return out


def test_without_loss_both_buffers_release_alike() -> None:
    ours = released(GapSkippingJitterBuffer(CAPACITY, PREFETCH), set())
    theirs = released(JitterBuffer(CAPACITY, PREFETCH), set())
    assert ours == theirs
    assert all(arrival - frame == PREFETCH for arrival, frame in ours)


@pytest.mark.parametrize("lost", [{50}, {50, 51}, {50, 90, 91, 130}])
def test_a_loss_costs_only_the_lost_frames(lost: set[int]) -> None:
    ours = released(GapSkippingJitterBuffer(CAPACITY, PREFETCH), lost)
    frames = [frame for _, frame in ours]
    # Every frame that arrived comes out, in order, but the last four,
    # still waiting for what follows them.
    assert frames == [n for n in range(196) if n not in lost]
    # ... and never later than four arrivals behind, as without loss.
    assert max(arrival - frame for arrival, frame in ours) <= (
        PREFETCH + len(lost))


def test_aiortcs_own_buffer_stalls_and_evicts_after_one_loss() -> None:
    """Why ours exists: the behaviour it replaces, measured. One lost
    packet stalls the call for 16 arrivals (320 ms), throws away the
    four frames received before the hole, and leaves every later frame
    14 arrivals (280 ms) late for the rest of the call."""
    theirs = released(JitterBuffer(CAPACITY, PREFETCH), {50})
    frames = [frame for _, frame in theirs]
    assert set(range(46, 50)).isdisjoint(frames)  # received, discarded
    assert {arrival - frame for arrival, frame in theirs
            if frame > 50} == {CAPACITY - 2}


def test_a_frame_of_two_packets_goes_out_whole() -> None:
    """Packets that share a timestamp are one frame: released together,
    their payloads joined, never split across a hole's give-up."""
    buffer = GapSkippingJitterBuffer(CAPACITY, PREFETCH)
    frames = []
    for seq in range(40):
        frame_number = seq // 2
        packet = RtpPacket(sequence_number=seq,
                           timestamp=frame_number * STEP,
                           payload=bytes([seq]))
        packet._data = packet.payload  # type: ignore[attr-defined]
        _, frame = buffer.add(packet)
        if frame is not None:
            frames.append(frame)
    assert [f.timestamp // STEP for f in frames] == list(range(20 - PREFETCH))
    assert all(f.data == bytes([2 * n, 2 * n + 1])
               for n, f in enumerate(frames))


async def test_install_gives_an_audio_receiver_this_buffer() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("audio").receiver
        buffer = install(receiver)
        assert vars(receiver)["_RTCRtpReceiver__jitter_buffer"] is buffer
        assert (buffer.capacity, buffer._prefetch) == (CAPACITY, PREFETCH)
    finally:
        await pc.close()
