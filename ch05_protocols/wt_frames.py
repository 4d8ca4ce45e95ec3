"""Audio frames on WebTransport: a sequence number, then 20 ms of PCM.

Chapter 5, "WebTransport: QUIC datagrams". Every frame is 4 bytes of
big-endian sequence number (0 for a stream's first frame, then one
more for each frame), then `FRAME_MS` of PCM16 mono audio at the
stream's rate: 960 bytes at 24 kHz. Every frame is that long, the last
one padded with silence, so a receiver knows how much audio a missing
frame held. The same frames go back to back on a reliable stream
(`audio=stream`): being of one size, they need no length prefix. A
datagram must fit in one QUIC packet; `datagram_limit` is the largest
one that fits in a packet of a given size whatever the connection
IDs, and `read_datagram` refuses, with a reason, what is not one frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from aioquic.buffer import size_uint_var

HEADER = struct.Struct(">I")  # the sequence number
FRAME_MS = 20
SAMPLE_BYTES = 2  # PCM16
# A 1-RTT packet's most overhead (RFC 9000, 17.3; RFC 9001, 5.3): its
# first byte, a connection ID of up to 20 bytes, a packet number of up
# to 4, and the 16-byte AEAD tag.
PACKET_OVERHEAD = 1 + 20 + 4 + 16
# A DATAGRAM frame's type, and its length as a 2-byte varint.
DATAGRAM_FRAME_OVERHEAD = 1 + 2


class FrameError(ValueError):
    """Not one audio frame; `code` names why, for an error event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AudioFrame:
    seq: int
    pcm: bytes


def frame_bytes(sample_rate: int) -> int:
    """The audio in one frame: 960 bytes at 24 kHz."""
    return sample_rate * FRAME_MS // 1000 * SAMPLE_BYTES


def pack_frame(seq: int, pcm: bytes) -> bytes:
    return HEADER.pack(seq) + pcm


def datagram_limit(max_udp_payload: int, session_id: int) -> int:
    """The largest datagram payload of a WebTransport session that fits
    in a QUIC packet of `max_udp_payload` bytes: what is left once the
    packet, the DATAGRAM frame and the session's ID have taken theirs."""
    session = size_uint_var(session_id // 4)  # its quarter stream ID
    return (max_udp_payload - PACKET_OVERHEAD - DATAGRAM_FRAME_OVERHEAD
            - session)


def read_datagram(data: bytes, size: int) -> AudioFrame:
    """One datagram as a frame of `size` bytes of audio, or FrameError."""
    audio = len(data) - HEADER.size
    if audio < 0:
        raise FrameError(
            "datagram_too_short",
            f"a datagram of {len(data)} bytes: each starts with a"
            f" {HEADER.size}-byte sequence number")
    if audio > size:
        raise FrameError(
            "datagram_too_large",
            f"a datagram of {len(data)} bytes: at most {HEADER.size}"
            f" + {size}, one {FRAME_MS} ms frame of audio")
    if audio < size:
        raise FrameError(
            "invalid_audio_frame",
            f"a frame of {audio} bytes of audio: each holds {size}"
            f" ({FRAME_MS} ms); pad the last one with silence")
    (seq,) = HEADER.unpack_from(data)
    return AudioFrame(seq, data[HEADER.size:])


@dataclass
class StreamFrames:
    """Frames from a reliable stream's bytes, which arrive in pieces."""

    size: int  # bytes of audio in a frame
    _pending: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[AudioFrame]:
        self._pending += data
        record = HEADER.size + self.size
        whole = len(self._pending) - len(self._pending) % record
        frames = [read_datagram(bytes(self._pending[i:i + record]),
                                self.size)
                  for i in range(0, whole, record)]
        del self._pending[:whole]
        return frames

    def finish(self) -> None:
        """The stream ended: a frame cut short is an error."""
        if self._pending:
            cut = len(self._pending)
            self._pending.clear()
            raise FrameError(
                "invalid_audio_frame",
                f"the audio stream ended {cut} bytes into a frame of"
                f" {HEADER.size + self.size}")
