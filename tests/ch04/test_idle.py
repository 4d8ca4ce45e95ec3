"""The idle sweeper: silence from the client closes, our own lag not."""

from __future__ import annotations

import asyncio

from websockets.protocol import State

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.app import session_factory
from ch04_streaming.dialects.deepgram import Deepgram
from ch04_streaming.dialects.dialect import Closing, StreamDefaults
from ch04_streaming.engine import NullRecognizer
from ch04_streaming.scheduler import DirectScheduler
from ch04_streaming.stream_handler import ConnectionLimits, StreamHandler

ONE_SECOND = b"\x01\x00" * 16_000  # 16 kHz linear16


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Client:
    """Sends the given frames, then nothing."""

    state = State.OPEN
    input_ended = False

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames

    async def recv(self) -> bytes:
        if self.frames:
            return self.frames.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(self, message: str) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        pass


def handler_at(clock: Clock, client: Client) -> StreamHandler:
    dialect = Deepgram()
    request = dialect.parse({}, StreamDefaults(idle_timeout_s=10.0))
    limits = ConnectionLimits(max_pending_audio_s=1.5)
    scheduler = DirectScheduler(NullRecognizer(Accelerator(PROFILES["zero"])))
    return StreamHandler(client, dialect, request,
                         session_factory(scheduler, limits), limits,
                         clock=clock)


async def start_reading(handler: StreamHandler) -> asyncio.Task[Closing]:
    reader = asyncio.create_task(handler._read())
    handler._reader = reader
    # The fake client answers at once, so one turn of the loop takes the
    # reader to where it waits: on the client, or on the cap.
    await asyncio.sleep(0)
    return reader


async def test_a_quiet_client_is_expired_after_its_timeout() -> None:
    clock = Clock()
    handler = handler_at(clock, Client([]))
    reader = await start_reading(handler)
    handler.sweep(clock.now + 9.9)
    assert not reader.cancelling()
    handler.sweep(clock.now + 10.0)
    assert reader.cancelling()
    await asyncio.gather(reader, return_exceptions=True)
    assert reader.cancelled()


async def test_a_stream_we_hold_back_is_not_idle() -> None:
    """The reader waits on the pending-audio cap, not on the client:
    however long that takes, the client is not idle."""
    clock = Clock()
    handler = handler_at(clock, Client([ONE_SECOND]))
    handler.session.cap.update(1.0)  # a second undecoded, decoder stalled
    reader = await start_reading(handler)
    handler.sweep(clock.now + 60.0)
    assert not reader.cancelling()
    handler.session.cap.update(0.0)  # the decoder caught up
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    handler.sweep(clock.now + 9.9)  # now waiting on the client
    assert not reader.cancelling()
    assert handler.session.stats.received_s == 1.0
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)


async def test_a_stream_open_too_long_is_closed_however_busy() -> None:
    """KeepAlives alone must not hold a stream slot for ever: past the
    longest session, the stream ends with its dialect's code."""
    clock = Clock()
    handler = handler_at(clock, Client([]))
    reader = await start_reading(handler)
    limit = handler.limits.max_session_s
    handler.idle.busy()  # as if a KeepAlive had just come
    handler.sweep(clock.now + limit - 0.1)
    assert not reader.cancelling()
    handler.sweep(clock.now + limit)
    assert reader.cancelling()
    await asyncio.gather(reader, return_exceptions=True)
    assert handler._outcome(reader) == Closing(1000,
                                               "maximum session duration")
    assert handler.ended_by_policy
