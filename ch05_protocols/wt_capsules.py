"""How a WebTransport session ends: the close capsule.

Chapter 5, "WebTransport: QUIC datagrams". A session lives on the
stream of its CONNECT request; either side ends it by sending, on that
stream, a CLOSE_WEBTRANSPORT_SESSION capsule (RFC 9297's capsule
protocol: a type, a length, a value) with a 32-bit code and a reason,
then finishing the stream. A browser's `transport.closed` resolves with
that code and reason. Other capsules (a browser sends reserved ones, to
keep peers honest) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aioquic._buffer import Buffer, BufferReadError
from aioquic.buffer import encode_uint_var

CLOSE_SESSION = 0x2843  # CLOSE_WEBTRANSPORT_SESSION
MAX_REASON_BYTES = 1024  # the draft's limit
MAX_CAPSULE_BYTES = 4096  # more is no close capsule: a broken peer


class CapsuleError(ValueError):
    """A capsule larger than any this side reads."""


@dataclass(frozen=True)
class SessionClose:
    code: int
    reason: str


def close_capsule(code: int, reason: str) -> bytes:
    """A CLOSE_WEBTRANSPORT_SESSION capsule for `code` and `reason`."""
    text = reason.encode()[:MAX_REASON_BYTES]
    value = code.to_bytes(4, "big") + text
    return encode_uint_var(CLOSE_SESSION) + encode_uint_var(len(value)) + (
        value)


@dataclass
class CapsuleReader:
    """Capsules from a CONNECT stream's data, which arrives in pieces;
    yields the session's close, if one came."""

    _pending: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> SessionClose | None:
        self._pending += data
        while self._pending:
            buffer = Buffer(data=bytes(self._pending))
            try:
                kind = buffer.pull_uint_var()
                length = buffer.pull_uint_var()
                if length > MAX_CAPSULE_BYTES:
                    raise CapsuleError(f"a capsule of {length} bytes")
                value = buffer.pull_bytes(length)
            except BufferReadError:
                return None  # the rest of it is still on its way
            del self._pending[:buffer.tell()]
            if kind == CLOSE_SESSION and length >= 4:
                return SessionClose(int.from_bytes(value[:4], "big"),
                                    value[4:].decode(errors="replace"))
        return None
