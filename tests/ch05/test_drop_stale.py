"""Dropping stale audio: the cap's second policy, alone and on a socket."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.client import connect

from ch03_gpu.device import Accelerator, CostModel
from ch04_streaming.backpressure import (
    Backpressure,
    DropStaleAudio,
    FrameTooLongError,
    PendingAudioCap,
    pending_audio_cap,
)
from ch04_streaming.client import load_audio
from ch04_streaming.server import ServerLimits
from ch04_streaming.session import (
    SessionEvent,
    StreamSession,
    TranscriptEvent,
)
from ch04_streaming.stream_handler import ConnectionLimits
from tests.ch04.harness import KEY, Start, audio_of, new_session

CHUNK_BYTES = 3200  # 100 ms of 16 kHz linear16


@dataclass
class Undecoded:
    """Undecoded audio that drops what it is asked to, and says so."""

    cap: PendingAudioCap
    pending_s: float
    asked: list[float] = field(default_factory=list)

    def drop_oldest(self, seconds: float) -> float:
        self.asked.append(seconds)
        dropped = min(seconds, self.pending_s)
        self.pending_s -= dropped
        self.cap.update(self.pending_s)
        return dropped


def dropping_cap(pending_s: float) -> tuple[DropStaleAudio, Undecoded]:
    cap = DropStaleAudio(max_s=1.0)
    audio = Undecoded(cap, pending_s)
    cap.attach(audio)
    cap.update(pending_s)
    return cap, audio


async def test_a_full_cap_drops_the_oldest_instead_of_waiting() -> None:
    cap, audio = dropping_cap(pending_s=0.9)
    async with asyncio.timeout(1):  # it never waits
        await cap.make_room(0.3)  # 0.2 s over the 1 s cap
    assert audio.asked == [pytest.approx(0.2)]
    assert cap.dropped_s == pytest.approx(0.2)
    assert cap.pending_s == pytest.approx(0.7)  # room for the frame


async def test_a_frame_that_fits_drops_nothing() -> None:
    cap, audio = dropping_cap(pending_s=0.5)
    await cap.make_room(0.5)
    assert audio.asked == [] and cap.dropped_s == 0.0


async def test_a_frame_longer_than_the_cap_is_still_refused() -> None:
    cap, _ = dropping_cap(pending_s=0.0)
    with pytest.raises(FrameTooLongError, match=r"a frame of 1\.50 s"):
        await cap.make_room(1.5)


def test_each_stream_gets_the_policy_it_asked_for() -> None:
    buffering = pending_audio_cap(Backpressure.BUFFER, 10.0)
    dropping = pending_audio_cap(Backpressure.DROP, 10.0)
    assert type(buffering) is PendingAudioCap and buffering.dropped_s == 0
    assert isinstance(dropping, DropStaleAudio) and dropping.max_s == 10.0


def stale_dropping(events: list[SessionEvent]) -> StreamSession:
    return new_session(events, cap=DropStaleAudio(max_s=10.0))



def feed(session: StreamSession, audio: bytes) -> None:
    for start in range(0, len(audio), CHUNK_BYTES):
        session.accept_audio(audio[start : start + CHUNK_BYTES])


async def decode_all(session: StreamSession) -> None:
    decoding = asyncio.create_task(session.run())
    try:
        async with asyncio.timeout(5):
            await session.drained()
    finally:
        decoding.cancel()


def results(events: list[SessionEvent]) -> list[TranscriptEvent]:
    return [e for e in events if isinstance(e, TranscriptEvent)]


async def test_dropping_before_any_decode_starts_the_utterance_later(
) -> None:
    """Two sessions hear the same 2 s; one drops its oldest 0.5 s of
    speech first. Its utterance starts 0.5 s later, and ends where the
    other's does: the words after a gap keep their times."""
    audio = load_audio(audio_of("support_call")).payload[: 32_000 * 2]
    kept: list[SessionEvent] = []
    dropped: list[SessionEvent] = []
    whole, cut = stale_dropping(kept), stale_dropping(dropped)
    feed(whole, audio)
    feed(cut, audio)
    pending_s = cut.cap.pending_s
    assert cut.drop_oldest(0.5) == pytest.approx(0.5)
    assert cut.cap.pending_s == pytest.approx(pending_s - 0.5)
    await decode_all(whole)
    await decode_all(cut)
    first, other = results(kept)[0], results(dropped)[0]
    assert other.start_s == pytest.approx(first.start_s + 0.5)
    assert other.end_s == pytest.approx(first.end_s)
    assert cut.stats.dropped_s == pytest.approx(0.5)


async def test_dropping_after_a_decode_cuts_the_utterance_at_the_gap(
) -> None:
    """The decoder heard the first 1.5 s; of the next 1.5 s, the oldest
    0.5 s is dropped. What it heard gets its final; the rest goes on as
    a new utterance that starts after the gap."""
    audio = load_audio(audio_of("support_call")).payload[: 32_000 * 3]
    events: list[SessionEvent] = []
    session = stale_dropping(events)
    feed(session, audio[: 32_000 * 3 // 2])
    await decode_all(session)
    heard_to = results(events)[-1].end_s
    feed(session, audio[32_000 * 3 // 2 :])
    assert session.drop_oldest(0.5) == pytest.approx(0.5)
    await decode_all(session)
    after = results(events)[len(results(events)) - 2:]
    cut_final, resumed = after
    assert cut_final.hypothesis.is_final and cut_final.end_s == heard_to
    assert resumed.start_s == pytest.approx(heard_to + 0.5)
    assert resumed.end_s == pytest.approx(3.0)


async def test_dropping_a_whole_utterance_keeps_its_final() -> None:
    """An utterance that ended, all of it undecoded and dropped: its
    final still comes, empty, so the client sees the utterance end."""
    audio = load_audio(audio_of("support_call")).payload[: 32_000 * 4]
    events: list[SessionEvent] = []
    session = stale_dropping(events)
    feed(session, audio)  # the first utterance ends at 3.6 s
    session.drop_oldest(10.0)
    assert session.cap.pending_s == 0.0
    await decode_all(session)
    (final,) = results(events)
    assert final.hypothesis.is_final and final.hypothesis.words == ()


async def test_a_stream_behind_its_model_drops_and_stays_live(
    start_server: Start,
) -> None:
    """Through a real socket, as chapter 4's buffering test: 20 s of
    audio at once to a model that needs 300 ms a call, a 1 s cap. With
    `backpressure=drop` nothing waits: undecoded audio stays under the
    cap, the oldest is dropped, and the closing message says how much."""
    slow = Accelerator(CostModel(fixed_ms=300, per_audio_s_ms=0))
    limits = ServerLimits(connection=ConnectionLimits(
        max_pending_audio_s=1.0))
    payload = load_audio(audio_of("support_call")).payload[: 32_000 * 20]
    path = ("/ws/binary?encoding=linear16&sample_rate=16000"
            "&backpressure=drop")
    async with start_server(limits=limits, device=slow) as running:
        socket = await connect(running.url + path, additional_headers={
            "Authorization": f"Token {KEY}"})
        (handler,) = running.server.handlers
        for start in range(0, len(payload), 3200):
            await socket.send(payload[start : start + 3200])
        await socket.send(json.dumps({"type": "close"}))
        async with asyncio.timeout(60):
            messages = [json.loads(m) async for m in socket]
    stats = handler.session.stats
    assert handler.session.cap.peak_s <= 1.0 + 0.1 + 0.3
    assert stats.received_s == 20.0 and stats.dropped_s > 5.0
    assert messages[-1] == {"type": "closed", "audio_s": 20.0,
                            "dropped_audio_s": round(stats.dropped_s, 3)}
    assert any(m.get("is_final") for m in messages)
