"""Two channels in one Deepgram stream: each transcribed on its own with
`multichannel=true`, mixed down to one without it; part frames and
contradicting headers refused with their reason."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from deepgram import AsyncDeepgramClient
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.app import session_factory
from ch04_streaming.backpressure import Backpressure
from ch04_streaming.channels import ChannelSessions
from ch04_streaming.dialects.deepgram import Deepgram
from ch04_streaming.dialects.dialect import StreamDefaults
from ch04_streaming.engine import (
    DecodeRequest,
    NullRecognizer,
    UtteranceDecoder,
)
from ch04_streaming.metrics import ServiceMetrics
from ch04_streaming.result_latency import ResultLatency
from ch04_streaming.scheduler import (
    DecodeScheduler,
    DecodeUnavailableError,
    DirectScheduler,
)
from ch04_streaming.session import ArrivalLog, SessionEvent, TranscriptEvent
from ch04_streaming.stream_handler import ConnectionLimits
from ch04_streaming.transcript import Hypothesis, Word
from tests.ch04.deepgram_sdk import environment, exchange
from tests.ch04.harness import (
    KEY,
    MANIFEST,
    Start,
    audio_of,
    interleave,
    pcm16_of,
    reference,
)

LEFT, RIGHT = "quick_brown_fox", "weather_forecast"
STEREO = "channels=2&encoding=linear16&sample_rate=16000"
MULTICHANNEL = f"multichannel=true&{STEREO}"
Message = dict[str, Any]


def stereo_pcm(left: str = LEFT, right: str = RIGHT) -> bytes:
    pcm = interleave(pcm16_of(left), pcm16_of(right))
    return pcm.astype("<i2").tobytes()


async def listen(url: str, query: str, payload: bytes,
                 frame_bytes: int = 6_400) -> list[Message]:
    """Send `payload` in frames (100 ms of 16 kHz stereo linear16),
    close the stream, and collect every message until the server's
    close."""
    async with connect(f"{url}/v1/listen?{query}", additional_headers={
            "Authorization": f"Token {KEY}"}) as socket:
        for start in range(0, len(payload), frame_bytes):
            await socket.send(payload[start : start + frame_bytes])
        await socket.send(json.dumps({"type": "CloseStream"}))
        async with asyncio.timeout(30):
            return [json.loads(m) async for m in socket]


def results(messages: list[Message], channel: int) -> list[Message]:
    return [m for m in messages
            if m["type"] == "Results" and m["channel_index"][0] == channel]


def transcript(messages: list[Message], channel: int) -> str:
    """The channel's finals, joined as a client would."""
    texts = [m["channel"]["alternatives"][0]["transcript"]
             for m in results(messages, channel) if m["is_final"]]
    return " ".join(t for t in texts if t)


def words_heard(messages: list[Message], channel: int) -> set[str]:
    """Every word of every result of the channel, interims too."""
    return {w["word"] for m in results(messages, channel)
            for w in m["channel"]["alternatives"][0]["words"]}


async def test_each_channel_is_transcribed_on_its_own(
    start_server: Start,
) -> None:
    query = (f"{MULTICHANNEL}&interim_results=true&vad_events=true"
             "&utterance_end_ms=1000")
    payload = stereo_pcm()
    async with start_server() as running:
        messages = await listen(running.url, query, payload)
    assert transcript(messages, 0) == reference(LEFT)
    assert transcript(messages, 1) == reference(RIGHT)
    assert {tuple(m["channel_index"]) for m in messages
            if m["type"] == "Results"} == {(0, 2), (1, 2)}
    # A channel's results hold its own words only, interims included.
    assert words_heard(messages, 0) <= set(reference(LEFT).split())
    assert words_heard(messages, 1) <= set(reference(RIGHT).split())
    started = [tuple(m["channel"]) for m in messages
               if m["type"] == "SpeechStarted"]
    assert sorted(started) == [(0, 2), (1, 2)]
    for end in (m for m in messages if m["type"] == "UtteranceEnd"):
        channel, count = end["channel"]
        last_words = [r["channel"]["alternatives"][0]["words"][-1]["end"]
                      for r in results(messages, channel)
                      if r["is_final"]
                      and r["channel"]["alternatives"][0]["words"]]
        assert count == 2 and end["last_word_end"] in last_words
    metadata = messages[-1]
    assert metadata["type"] == "Metadata"
    assert metadata["channels"] == 2
    # The stream's duration, once: not summed over its channels.
    assert metadata["duration"] == round(len(payload) / 4 / 16_000, 3)


async def test_interleaved_linear32_is_transcribed_per_channel(
    start_server: Start,
) -> None:
    pcm = interleave(pcm16_of(RIGHT), pcm16_of(LEFT))  # swapped sides
    payload = (pcm.astype(np.float32) / 32768).astype("<f4").tobytes()
    query = "multichannel=true&channels=2&encoding=linear32&sample_rate=16000"
    async with start_server() as running:
        messages = await listen(running.url, query, payload,
                                frame_bytes=12_800)
    assert transcript(messages, 0) == reference(RIGHT)
    assert transcript(messages, 1) == reference(LEFT)


async def test_a_stereo_wav_header_is_taken_when_stereo_is_declared(
    start_server: Start,
) -> None:
    raw = io.BytesIO()
    pcm = interleave(pcm16_of(LEFT), pcm16_of(RIGHT)).reshape(-1, 2)
    sf.write(raw, pcm, 16_000, format="WAV", subtype="PCM_16")
    async with start_server() as running:
        # The first frame: the 44-byte header, then whole sample frames.
        messages = await listen(running.url, MULTICHANNEL, raw.getvalue())
    assert transcript(messages, 0) == reference(LEFT)
    assert transcript(messages, 1) == reference(RIGHT)


async def test_without_multichannel_the_channels_are_mixed_down(
    start_server: Start,
) -> None:
    """The same speech on both sides, mixed down: the mono transcript,
    on one channel, over the stream's duration."""
    payload = stereo_pcm(LEFT, LEFT)
    async with start_server() as running:
        messages = await listen(running.url, STEREO, payload)
    assert transcript(messages, 0) == reference(LEFT)
    assert {tuple(m["channel_index"]) for m in messages
            if m["type"] == "Results"} == {(0, 1)}
    metadata = messages[-1]
    assert metadata["channels"] == 1
    assert abs(metadata["duration"] - MANIFEST.get(LEFT).duration_s) < 1e-3


async def closed_with(start_server: Start, query: str,
                      *frames: bytes) -> tuple[int | None, str | None]:
    """How the server closes a stream that sent `frames`."""
    async with start_server() as running, connect(
            f"{running.url}/v1/listen?{query}",
            additional_headers={"Authorization": f"Token {KEY}"},
    ) as socket:
        for frame in frames:
            await socket.send(frame)
        async with asyncio.timeout(10):
            await socket.wait_closed()
    return socket.close_code, socket.close_reason


@pytest.mark.parametrize("query", [MULTICHANNEL, STEREO])
async def test_a_frame_ending_inside_a_sample_frame_is_refused(
    start_server: Start, query: str,
) -> None:
    closed = await closed_with(start_server, query, bytes(6_400),
                               bytes(6))  # three 16-bit samples
    assert closed == (1008, (
        "DATA-0000: linear16 frame of 6 bytes is not a whole number of"
        " 4-byte sample frames (2 channels of 2 bytes)"))


async def test_a_stereo_wav_on_a_mono_stream_is_refused(
    start_server: Start,
) -> None:
    raw = io.BytesIO()
    sf.write(raw, np.zeros((1600, 2), np.int16), 16_000, format="WAV",
             subtype="PCM_16")
    closed = await closed_with(start_server,
                               "encoding=linear16&sample_rate=16000",
                               raw.getvalue())
    assert closed == (1008, (
        "DATA-0000: declared linear16 16000 Hz mono, but the WAV holds"
        " linear16 16000 Hz with 2 channel(s)"))


async def test_deepgram_sdk_reads_each_channels_results(
    start_server: Start,
) -> None:
    payload = stereo_pcm()
    async with start_server() as running:
        client = AsyncDeepgramClient(
            api_key=KEY, environment=environment(running.http, running.url))
        async with client.listen.v1.connect(
            model="nova-3", encoding="linear16", sample_rate="16000",
            channels="2", multichannel="true", interim_results="true",
        ) as connection:
            heard = await exchange(connection, (
                payload[i : i + 6_400] for i in range(0, len(payload), 6_400)))
    results, metadata = heard.results, heard.metadata
    for channel, fixture_id in enumerate((LEFT, RIGHT)):
        finals = [r.channel.alternatives[0].transcript for r in results
                  if r.is_final and r.channel_index == [channel, 2]]
        assert " ".join(t for t in finals if t) == reference(fixture_id)
    (summary,) = metadata
    assert summary.channels == 2


def null_scheduler() -> DirectScheduler:
    return DirectScheduler(NullRecognizer(Accelerator(PROFILES["zero"])))


def channel_sessions(
    events: list[SessionEvent], scheduler: DecodeScheduler | None = None,
    backpressure: Backpressure = Backpressure.BUFFER,
    max_pending_audio_s: float = 10.0,
) -> ChannelSessions:
    """Chapter 4's session factory, asked for two channels, each
    transcribed on its own, on a model that hears nothing."""
    request = replace(Deepgram().parse(
        {"multichannel": "true", "channels": "2"}, StreamDefaults()),
        backpressure=backpressure)
    new_session = session_factory(
        scheduler or null_scheduler(),
        ConnectionLimits(max_pending_audio_s=max_pending_audio_s))
    session = new_session(request, events.append)
    assert isinstance(session, ChannelSessions)
    return session


def feed(session: ChannelSessions, payload: bytes) -> None:
    for start in range(0, len(payload), 6_400):
        session.accept_audio(payload[start : start + 6_400])


def test_the_streams_cap_holds_the_channel_furthest_behind() -> None:
    session = channel_sessions([])
    silence = np.zeros(16_000, np.int16)
    feed(session, interleave(silence, pcm16_of(RIGHT)[:48_000])
         .astype("<i2").tobytes())  # no decoding: speech piles up
    left, right = session.channels
    assert left.cap.pending_s == 0.0 < right.cap.pending_s
    assert session.cap.pending_s == right.cap.pending_s


async def test_dropping_stale_audio_brings_every_channel_under_the_cap(
) -> None:
    session = channel_sessions([], backpressure=Backpressure.DROP,
                               max_pending_audio_s=1.5)
    feed(session, stereo_pcm())  # 5 s each, never decoded
    assert session.cap.pending_s > 1.5
    await session.cap.make_room(0.1)
    assert session.cap.pending_s <= 1.4 + 1e-6
    assert all(s.cap.pending_s <= session.cap.pending_s
               for s in session.channels)
    assert session.cap.dropped_s > 0
    assert session.stats.dropped_s == pytest.approx(
        sum(s.stats.dropped_s for s in session.channels))


async def test_stats_count_the_stream_once_and_every_channels_decoding(
) -> None:
    events: list[SessionEvent] = []
    session = channel_sessions(events)
    payload = stereo_pcm()
    decoding = asyncio.create_task(session.run())
    try:
        feed(session, payload)
        session.finalize()
        async with asyncio.timeout(5):
            await session.drained()
    finally:
        decoding.cancel()
    left, right = (s.stats for s in session.channels)
    stats = session.stats
    assert stats.received_s == len(payload) / 4 / 16_000
    assert left.decoded_s > 0 and right.decoded_s > 0
    assert stats.decoded_s == left.decoded_s + right.decoded_s
    assert stats.finals == left.finals + right.finals >= 2
    channels = {e.channel for e in events if isinstance(e, TranscriptEvent)}
    assert channels == {0, 1}


class FailingScheduler:
    """Opens utterances, and fails every decode."""

    def new_utterance(self, start_s: float) -> UtteranceDecoder:
        return UtteranceDecoder(start_s)

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        raise DecodeUnavailableError("no decoder for this stream")


async def test_a_channel_that_fails_ends_the_stream_with_its_error(
) -> None:
    session = channel_sessions([], scheduler=FailingScheduler())
    feed(session, stereo_pcm())
    with pytest.raises(DecodeUnavailableError, match="no decoder"):
        async with asyncio.timeout(5):
            await session.run()


def test_a_channels_results_are_timed_by_its_own_arrivals() -> None:
    """Channel 1's audio arrived later than channel 0's: its result is
    timed from its own arrival log, and its utterance, though it starts
    when channel 0's does, gets a first result of its own."""
    logs = (ArrivalLog(), ArrivalLog())
    logs[0].record(2.0, at=100.0)
    logs[1].record(2.0, at=100.4)
    metrics = ServiceMetrics()
    timer = ResultLatency(metrics, "deepgram", logs, clock=lambda: 100.5)
    words = (Word("hello", 0.5, 1.0),)
    for channel in (0, 1):
        timer.observe(TranscriptEvent(
            Hypothesis(words, is_final=False), start_s=0.5, end_s=1.0,
            speech_final=False, from_finalize=False, channel=channel))
    assert metrics.registry.get_sample_value(
        "speech_first_result_seconds_count", {"dialect": "deepgram"}) == 2
    assert metrics.registry.get_sample_value(
        "speech_first_result_seconds_sum", {"dialect": "deepgram"}
    ) == pytest.approx(0.5 + 0.1)


async def test_channels_are_split_from_raw_audio_only(
    start_server: Start,
) -> None:
    """A container is mixed down; asked to split one, the service says
    it takes raw audio, at the upgrade or at the first frame."""
    ogg = audio_of("quick_brown_fox_opus").read_bytes()
    async with start_server() as running:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{running.url}/v1/listen?encoding=ogg-opus"
                               "&multichannel=true&channels=2",
                               additional_headers={
                                   "Authorization": f"Token {KEY}"}):
                pass
    assert refused.value.response.status_code == 400
    assert b"multichannel=true takes raw audio" in (
        refused.value.response.body)
    closed = await closed_with(start_server,
                               "multichannel=true&channels=2", ogg[:4096])
    assert closed == (1008, "DATA-0000: ogg container, but raw linear16"
                            " was declared")
