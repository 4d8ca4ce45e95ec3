"""The idle sweeper: silence from the client closes, our own lag not."""

from __future__ import annotations

from ch04_streaming.dialects.deepgram import Deepgram
from ch04_streaming.dialects.dialect import StreamDefaults
from ch04_streaming.stream_handler import ConnectionLimits, StreamHandler


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Reader:
    """Stands in for the reader task: records that it was cancelled."""

    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def handler_at(clock: Clock) -> tuple[StreamHandler, Reader]:
    dialect = Deepgram()
    request = dialect.parse({}, StreamDefaults(idle_timeout_s=10.0))
    handler = StreamHandler(
        None, dialect, request, None,  # type: ignore[arg-type]
        ConnectionLimits(), clock=clock,
    )
    reader = Reader()
    handler._reader = reader  # type: ignore[assignment]
    return handler, reader


def test_a_quiet_client_is_expired_after_its_timeout() -> None:
    clock = Clock()
    handler, reader = handler_at(clock)
    handler.expire_if_idle(clock.now + 9.9)
    assert not reader.cancelled
    handler.expire_if_idle(clock.now + 10.0)
    assert reader.cancelled


def test_a_stream_we_hold_back_is_not_idle() -> None:
    clock = Clock()
    handler, reader = handler_at(clock)
    handler.session._room.clear()  # backpressure: we stopped reading
    handler.expire_if_idle(clock.now + 60.0)
    assert not reader.cancelled
