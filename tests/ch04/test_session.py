"""The session core on its own: what it decodes, and what it counts."""

from __future__ import annotations

import asyncio

from ch04_streaming.client import load_audio
from ch04_streaming.session import (
    SessionEvent,
    TranscriptEvent,
)
from tests.ch04.harness import audio_of, new_session

CHUNK_BYTES = 3200  # 100 ms of 16 kHz linear16



async def test_inference_that_keeps_up_skips_no_interim() -> None:
    """One chunk in, its result out, before the next chunk: every
    chunk of speech gets its own interim and none counts as skipped."""
    events: list[SessionEvent] = []
    session = new_session(events)
    decoding = asyncio.create_task(session.run())
    audio = load_audio(audio_of("support_call")).payload
    try:
        for start in range(0, len(audio), CHUNK_BYTES):
            session.accept_audio(audio[start : start + CHUNK_BYTES])
            async with asyncio.timeout(5):
                await session.drained()
    finally:
        decoding.cancel()
    stats = session.stats
    results = [e for e in events if isinstance(e, TranscriptEvent)]
    assert stats.finals >= 5 and stats.decode_calls == len(results)
    assert stats.interims_skipped == 0
    # Each decode took at most one chunk, plus the replayed pre-roll.
    assert stats.decode_calls >= stats.decoded_s / 0.4


async def test_queued_chunks_share_one_interim() -> None:
    """Chunks that arrive while the decoder is busy are decoded
    together: one interim for them all, the others counted skipped."""
    events: list[SessionEvent] = []
    session = new_session(events)
    audio = load_audio(audio_of("quick_brown_fox")).payload
    for start in range(0, len(audio), CHUNK_BYTES):
        session.accept_audio(audio[start : start + CHUNK_BYTES])
    decoding = asyncio.create_task(session.run())
    try:
        async with asyncio.timeout(5):
            await session.drained()
    finally:
        decoding.cancel()
    stats = session.stats
    assert stats.decode_calls == 1 and stats.finals == 1
    speech_chunks = stats.decoded_s / 0.1
    # The pre-roll and the first chunk of speech go as one piece.
    assert stats.interims_skipped >= int(speech_chunks) - 3
