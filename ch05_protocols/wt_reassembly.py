"""Datagrams back into a stream of audio, its time kept.

Chapter 5, "WebTransport: QUIC datagrams". Datagrams may arrive out of
order, twice, or never. The reassembler places each frame by its
sequence number and hands audio on in order. A missing frame is waited
for while `depth` later frames arrive (60 ms at the default), then
concealed with a frame of silence, so every word after a loss is still
at the time the sender spoke it; a frame that comes after its place
was concealed is too late and dropped, as is a duplicate. The
concealed seconds are the audio lost. Sequence numbers start at 0, so a
lost first frame is concealed too.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

HISTORY = 256  # frames remembered as heard or concealed


class SequenceError(ValueError):
    """A sequence number too far ahead to conceal the gap before it."""


@dataclass
class ReassemblyStats:
    received: int = 0  # frames placed
    concealed: int = 0  # frames of silence in place of lost ones
    late: int = 0  # arrived after their place was concealed
    duplicates: int = 0


@dataclass
class Reassembler:
    """Frames in sequence order; a gap becomes silence once `depth`
    later frames have come, or at the end of the stream."""

    frame_bytes: int
    depth: int = 3
    max_ahead: int = 500  # frames: 10 s of 20 ms
    next_seq: int = 0
    stats: ReassemblyStats = field(default_factory=ReassemblyStats)
    _held: dict[int, bytes] = field(default_factory=dict)
    _heard: deque[bool] = field(  # played (True) or concealed (False)
        default_factory=lambda: deque(maxlen=HISTORY))

    # --8<-- [start:datagram_reassembly]
    def push(self, seq: int, pcm: bytes) -> bytes:
        """Place one frame; return the audio now in order."""
        if seq < self.next_seq or seq in self._held:
            self._count_dropped(seq)  # too late, or a duplicate
            return b""
        if seq - self.next_seq > self.max_ahead:
            raise SequenceError(
                f"sequence number {seq} is {seq - self.next_seq} frames"
                f" ahead of {self.next_seq}; at most {self.max_ahead}")
        self._held[seq] = pcm
        self.stats.received += 1
        return self._release(everything=False)

    def _release(self, everything: bool) -> bytes:
        audio = bytearray()
        while self._held and (everything or self.next_seq in self._held
                              or max(self._held) - self.next_seq
                              >= self.depth):
            pcm = self._held.pop(self.next_seq, None)
            self._heard.append(pcm is not None)
            if pcm is None:  # lost, or too slow: silence in its place
                pcm = bytes(self.frame_bytes)
                self.stats.concealed += 1
            audio += pcm
            self.next_seq += 1
        return bytes(audio)
    # --8<-- [end:datagram_reassembly]

    def flush(self) -> bytes:
        """The end of the stream: all that is held, gaps concealed."""
        return self._release(everything=True)

    def _count_dropped(self, seq: int) -> None:
        back = self.next_seq - seq  # 1: the frame handed on last
        if seq in self._held:
            self.stats.duplicates += 1
        elif back > len(self._heard) or not self._heard[-back]:
            self.stats.late += 1  # its place went by as silence
        else:
            self.stats.duplicates += 1

    def concealed_s(self, frame_s: float) -> float:
        return self.stats.concealed * frame_s
