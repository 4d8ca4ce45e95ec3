"""A jitter buffer that gives up on a lost packet, not on the audio after.

Chapter 5, "WebRTC: jitter buffers". aiortc's audio receiver keeps 16
packets and releases a frame once four more complete ones follow it.
But a lost packet leaves a hole that no arrival fills: the buffer
stalls until 16 packets have piled up behind it, then throws away the
four frames it held before the hole and stays 14 frames (280 ms)
behind for the rest of the call. Each loss costs five frames, so 5 %
packet loss loses a quarter of the audio. A jitter buffer's job is to wait for
a late packet as long as its prefetch, no longer: here the oldest
frame goes out whenever `prefetch` frames wait behind it, whether or
not a hole lies before it, so a lost packet is given up once four
frames have arrived after it, and its 20 ms become the silence
`rtc_audio.py` puts in a gap of timestamps. aiortc offers no way to
choose the buffer, so `install` swaps it into one receiver.
"""

from __future__ import annotations

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

CAPACITY, PREFETCH = 16, 4  # aiortc's own for audio


# --8<-- [start:gap_skipping]
class GapSkippingJitterBuffer(JitterBuffer):
    """aiortc's buffer, but a hole waits for `prefetch` frames only."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        frames = self._frames()
        if len(frames) <= self._prefetch:
            return None  # too few behind the head: wait
        end, timestamp, packets = frames[0]
        self.remove(end)  # the head frame, and any hole before it
        # `_data`: the payload as aiortc's receiver depacketised it
        data = b"".join(getattr(p, "_data") for p in packets)  # noqa: B009
        return JitterFrame(data, timestamp)

    def _frames(self) -> list[tuple[int, int, list[RtpPacket]]]:
        """The frames waiting, oldest first, each with how far from
        the origin it ends; holes between them are skipped."""
        frames: list[tuple[int, int, list[RtpPacket]]] = []
        origin = self._origin or 0
        for offset in range(self.capacity):
            packet = self._packets[(origin + offset) % self.capacity]
            if packet is None:
                continue
            if frames and frames[-1][1] == packet.timestamp:
                frames[-1][2].append(packet)
                frames[-1] = (offset + 1, packet.timestamp, frames[-1][2])
            else:
                frames.append((offset + 1, packet.timestamp, [packet]))
        return frames
# --8<-- [end:gap_skipping]


def install(receiver: RTCRtpReceiver) -> GapSkippingJitterBuffer:
    """Give an audio receiver this buffer, before any packet arrives."""
    buffer = GapSkippingJitterBuffer(CAPACITY, PREFETCH)
    # aiortc keeps its buffer private, under a mangled name.
    setattr(receiver, "_RTCRtpReceiver__jitter_buffer", buffer)  # noqa: B010
    return buffer
