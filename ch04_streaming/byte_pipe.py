"""A byte pipe from the event loop to one reader thread.

Chapter 4, "Audio fundamentals for serving engineers": the seam that
lets a library written for files decode a live stream. FFmpeg's
demuxers pull their input through a blocking `read(n)`, while a
WebSocket pushes frames into a coroutine. The loop `write`s each frame
into the pipe; the reader thread's `read` returns whatever is buffered
(a short read is fine for FFmpeg) and blocks while nothing is. A reader
that waits on an empty pipe has used every byte it was given, so its
owner knows the output so far is all those bytes can give. The bytes
that may wait are capped; `close` ends the input after what is
buffered, and `abort` ends it at once, dropping what is buffered. The
reader sees either end as end of file: it never gets an exception,
which would have to cross FFmpeg's C code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


class PipeFullError(ValueError):
    """A write would leave more bytes waiting than the pipe's cap."""


class PipeClosedError(ValueError):
    """A write after the end of input."""


@dataclass
class BytePipe:
    limit: int  # bytes that may wait for the reader
    # Called, from the reader's thread, when it waits on an empty pipe.
    on_starved: Callable[[], None] = lambda: None
    delivered: int = field(default=0, init=False)  # bytes read so far
    _buffer: bytearray = field(default_factory=bytearray, init=False)
    _changed: threading.Condition = field(
        default_factory=threading.Condition, init=False)
    _closed: bool = field(default=False, init=False)
    aborted: bool = field(default=False, init=False)
    _starved: bool = field(default=False, init=False)

    def write(self, data: bytes) -> None:
        with self._changed:
            if self._closed or self.aborted:
                raise PipeClosedError("write after the end of input")
            waiting = len(self._buffer) + len(data)
            if waiting > self.limit:
                raise PipeFullError(f"{waiting} bytes would wait undecoded;"
                                    f" at most {self.limit}")
            self._buffer += data
            self._starved = False
            self._changed.notify_all()

    def close(self) -> None:
        """The end of input: the reader gets what is left, then b""."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def abort(self) -> None:
        """The end of input now: what is buffered is dropped."""
        with self._changed:
            self.aborted = True
            self._buffer.clear()
            self._changed.notify_all()

    @property
    def starved(self) -> bool:
        """The reader waits on an empty pipe: it has used every byte."""
        with self._changed:
            return self._starved

    def read(self, size: int) -> bytes:
        """Up to `size` buffered bytes, blocking while there are none;
        b"" at the end of input."""
        with self._changed:
            while not self._buffer:
                if self._closed or self.aborted:
                    return b""
                if not self._starved:
                    self._starved = True
                    self.on_starved()
                self._changed.wait()
            chunk = bytes(self._buffer[:size])
            del self._buffer[:size]
            self.delivered += len(chunk)
            return chunk
