"""How long audio waits in the receiver's jitter buffer, measured.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
A WebRTC receiver holds packets back so that late ones can still be
played in order: that hold is latency every word pays. aiortc's audio
receiver keeps a `JitterBuffer(capacity=16, prefetch=4)`: a frame is
released when the fourth frame after it has arrived, so at 20 ms a
frame it adds about 80 ms when nothing is lost. The delay is measured
here rather than assumed: the time of each RTP packet's arrival is
noted under its timestamp, and the decoded frame, which aiortc stamps
with the same timestamp (counted from the first) as its `pts`, is
timed when it comes out of the track. The figure covers the buffer's
hold, the decode and the hand-over between the decoder thread and the
event loop. aiortc has no public hook for a packet's arrival, so the
receiver's packet handler is wrapped, on this one receiver only.
"""

from __future__ import annotations

import statistics
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

WRAP = 1 << 32  # RTP timestamps are 32 bits
PENDING = 64  # arrivals remembered: four times the buffer's capacity


@dataclass(frozen=True)
class DelaySummary:
    frames: int  # decoded frames timed
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


@dataclass
class JitterDelay:
    """Arrival of a frame's packet -> its decoded frame, per frame."""

    clock: Callable[[], float] = time.monotonic
    window: int = 1000  # the latest delays the percentiles cover
    frames: int = 0
    max_s: float = 0.0
    _first: int | None = None
    _arrived: OrderedDict[int, float] = field(default_factory=OrderedDict)
    _delays: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        self._delays = deque(maxlen=self.window)

    def watch(self, receiver: RTCRtpReceiver) -> None:
        """Note every RTP packet `receiver` is handed, as it arrives."""
        handle = receiver._handle_rtp_packet

        async def arrived(packet: RtpPacket, arrival_time_ms: int) -> None:
            self.packet(packet.timestamp)
            await handle(packet, arrival_time_ms)

        setattr(receiver, "_handle_rtp_packet", arrived)  # noqa: B010

    def packet(self, timestamp: int) -> None:
        if self._first is None:
            self._first = timestamp
        offset = (timestamp - self._first) % WRAP
        self._arrived.setdefault(offset, self.clock())
        while len(self._arrived) > PENDING:  # lost, or never decoded
            self._arrived.popitem(last=False)

    def decoded(self, pts: int | None) -> None:
        """A frame came out of the track: time it from its arrival."""
        arrived = None if pts is None else self._arrived.pop(pts % WRAP,
                                                             None)
        if arrived is None:
            return
        delay_s = self.clock() - arrived
        self.frames += 1
        self.max_s = max(self.max_s, delay_s)
        self._delays.append(delay_s)

    def summary(self) -> DelaySummary:
        if not self._delays:
            return DelaySummary(0, None, None, None)
        ordered = sorted(self._delays)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return DelaySummary(self.frames,
                            ms(statistics.median(ordered)), ms(p95),
                            ms(self.max_s))


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
