"""A WebRTC audio track as the session's PCM, with lost audio filled in.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
aiortc decodes Opus into 20 ms `av.AudioFrame`s at 48 kHz, stamped with
their RTP timestamp as `pts`; the realtime dialect wants PCM16 mono at
24 kHz. The frames are resampled (libswresample, through PyAV) and the
timestamps read: a frame that starts after the previous one ended
follows lost packets, whose time is filled with silence, so that the
session's clock (word times, endpointing) stays the sender's, and
counted as audio lost. A gap longer than `max_gap_s` is counted in full
but filled only that far: a timestamp that jumps an hour must not cost
an hour of silence. A frame that starts before the previous one ended
came twice, or too late, and is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

RATE = 24_000  # the realtime dialect's PCM16 rate
SAMPLE_BYTES = 2  # PCM16 mono


@dataclass(frozen=True)
class AudioCounts:
    received_s: float  # audio heard from the track
    lost_s: float  # gaps in its timestamps, filled with silence
    late_frames: int  # frames dropped: they overlapped what came before


@dataclass
class TrackPcm:
    """Decoded WebRTC frames -> PCM16 mono at `rate`, gaps concealed."""

    rate: int = RATE
    max_gap_s: float = 2.0
    received_s: float = 0.0
    lost_s: float = 0.0
    late_frames: int = 0
    _next_s: float | None = field(default=None, init=False)
    _resampler: av.AudioResampler = field(init=False)

    def __post_init__(self) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono",
                                            rate=self.rate)

    # --8<-- [start:track_to_pcm]
    def convert(self, frame: av.AudioFrame) -> bytes:
        """One decoded frame -> PCM, after silence for audio lost before
        it; nothing for a frame that came twice, or too late."""
        start_s = seconds(frame.pts, frame.time_base)
        duration_s = frame.samples / frame.sample_rate
        silence = b""
        if start_s is not None and self._next_s is not None:
            gap_s = start_s - self._next_s
            if gap_s < -duration_s / 2:  # came twice, or too late
                self.late_frames += 1
                return b""
            if gap_s * self.rate >= 1:  # a whole sample or more lost
                self.lost_s += gap_s
                silence = self.silence(min(gap_s, self.max_gap_s))
        if start_s is not None:
            self._next_s = start_s + duration_s
        self.received_s += duration_s
        return silence + pcm_of(self._resampler.resample(frame))
    # --8<-- [end:track_to_pcm]

    def silence(self, seconds: float) -> bytes:
        return bytes(round(seconds * self.rate) * SAMPLE_BYTES)

    def flush(self) -> bytes:
        """The resampler's last samples, once the track has ended."""
        return pcm_of(self._resampler.resample(None))

    def counts(self) -> AudioCounts:
        return AudioCounts(round(self.received_s, 3),
                           round(self.lost_s, 3), self.late_frames)


def seconds(pts: int | None, time_base: Fraction | None) -> float | None:
    if pts is None or time_base is None:
        return None
    return float(pts * time_base)


def pcm_of(frames: list[av.AudioFrame]) -> bytes:
    return b"".join(np.ascontiguousarray(f.to_ndarray()).tobytes()
                    for f in frames)
