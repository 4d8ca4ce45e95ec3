"""WebTransport end to end: aioquic's client against the server.

Chapter 5, "WebTransport: QUIC datagrams". A fixture streamed as
datagrams, or as the same frames on a stream, comes back as its
reference text in OpenAI's realtime events (or another dialect's);
client events on the events stream are answered; lost, reordered and
repeated datagrams are placed by sequence number, a loss concealed so
that speech keeps its times; and bad input (a datagram too large or
too short, a wrong key, a line too long) is refused clearly while
other sessions go on being served.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ch04_streaming.client import load_pcm
from ch04_streaming.dialects.deepgram import Deepgram
from ch04_streaming.mock_matcher import Lexicon
from ch05_protocols.wt_client import (
    RATE,
    CertificateMismatchError,
    DatagramTooLargeError,
    SessionRefusedError,
    Transcript,
    WebTransportClient,
    final_text,
    frames_of,
    open_session,
    transcribe,
)
from ch05_protocols.wt_command import WtSettings
from ch05_protocols.wt_frames import datagram_limit, pack_frame
from ch05_protocols.wt_server import WebTransportRoute
from tests.ch04.harness import KEY, audio_of, reference
from tests.ch05.wt_harness import RunningWt, running_wt_server

FIXTURE = "quick_brown_fox_24k"
WAIT_S = 30.0


def of_type(transcript: Transcript, kind: str) -> list[dict[str, Any]]:
    return [r.message for r in transcript.received
            if r.message["type"] == kind]


def closed(transcript: Transcript) -> dict[str, Any]:
    (message,) = of_type(transcript, "webtransport.closed")
    return message


def error_codes(transcript: Transcript) -> list[str]:
    return [m["error"]["code"] for m in of_type(transcript, "error")]


def speech_times(transcript: Transcript) -> list[int]:
    """Where the server VAD heard speech start and stop, in ms."""
    started = of_type(transcript, "input_audio_buffer.speech_started")
    stopped = of_type(transcript, "input_audio_buffer.speech_stopped")
    return ([m["audio_start_ms"] for m in started]
            + [m["audio_end_ms"] for m in stopped])


async def read_all(client: WebTransportClient) -> Transcript:
    """Every message to the end of the session, finals collected."""
    transcript = Transcript()
    async with asyncio.timeout(WAIT_S):
        async for received in client.events():
            transcript.received.append(received)
            if text := final_text(received.message):
                transcript.finals.append(text)
    return transcript


@pytest.fixture
async def wt(lexicon: Lexicon) -> Any:
    async with running_wt_server(lexicon) as running:
        yield running


@pytest.mark.parametrize("mode", ["datagram", "stream"])
async def test_a_fixture_comes_back_as_its_reference_text(
    wt: RunningWt, mode: str,
) -> None:
    pcm = load_pcm(audio_of(FIXTURE), RATE)
    async with open_session(wt.url, wt.certificate.sha256, mode,
                            KEY) as client:
        transcript = await transcribe(client, pcm, realtime=False)
    assert " ".join(transcript.finals) == reference(FIXTURE)
    report = closed(transcript)
    assert (report["code"], report["reason"]) == (1000, "")
    assert report["audio"] == {
        "mode": mode, "frames": len(frames_of(pcm)), "concealed_s": 0.0,
        "late_frames": 0, "duplicate_frames": 0, "dropped_frames": 0,
        "errors": 0}
    assert client.closed is None  # the client closed it, having read all
    assert [s.seq for s in transcript.sent] == list(
        range(len(transcript.sent)))


async def test_a_longer_conversation_over_datagrams(wt: RunningWt) -> None:
    pcm = load_pcm(audio_of("support_call"), RATE)
    async with open_session(wt.url, wt.certificate.sha256, "datagram",
                            KEY) as client:
        transcript = await transcribe(client, pcm, realtime=False)
    assert " ".join(transcript.finals) == reference("support_call")
    assert closed(transcript)["audio"]["concealed_s"] == 0.0


async def test_client_events_on_the_events_stream_are_answered(
    wt: RunningWt,
) -> None:
    pcm = load_pcm(audio_of(FIXTURE), RATE)
    async with open_session(wt.url, wt.certificate.sha256, "datagram",
                            KEY) as client:
        client.send_event({"type": "session.update", "session": {
            "type": "transcription", "audio": {"input": {"transcription": {
                "model": "whisper-1"}}}}})
        client.send_event({"type": "input_audio_buffer.shout"})
        transcript = await transcribe(client, pcm, realtime=False)
    (created,) = of_type(transcript, "session.created")
    (updated,) = of_type(transcript, "session.updated")
    assert created["session"]["audio"]["input"]["format"] == {
        "type": "audio/pcm", "rate": 24_000}
    assert updated["session"]["audio"]["input"]["transcription"][
        "model"] == "whisper-1"
    (error,) = of_type(transcript, "error")  # the dialect's own answer
    assert error["error"]["type"] == "invalid_request_error"
    assert " ".join(transcript.finals) == reference(FIXTURE)
    assert closed(transcript)["code"] == 1000


async def test_another_dialect_is_served_the_same_way(
    lexicon: Lexicon,
) -> None:
    route = WebTransportRoute("/v1/realtime", Deepgram(), {
        "encoding": "linear16", "sample_rate": "24000"})
    pcm = load_pcm(audio_of(FIXTURE), RATE)
    async with running_wt_server(lexicon, route=route) as wt:
        async with open_session(wt.url, wt.certificate.sha256, "stream",
                                KEY) as client:
            transcript = await transcribe(client, pcm, realtime=False)
        with pytest.raises(SessionRefusedError) as refused:
            async with open_session(wt.url + "?encoding=mulaw",
                                    wt.certificate.sha256, key=KEY):
                pass
    assert " ".join(transcript.finals) == reference(FIXTURE)
    assert of_type(transcript, "Results")
    (metadata,) = of_type(transcript, "Metadata")  # Deepgram's last
    assert metadata["duration"] == round(len(frames_of(pcm)) * 0.02, 3)
    assert refused.value.status == 400
    assert "PCM16 mono" in json.loads(refused.value.body)["error"][
        "message"]


async def send_in_order(client: WebTransportClient, frames: list[bytes],
                        order: list[int]) -> None:
    """Datagrams of `frames` in `order` (indices may repeat or be left
    out), then the end of input."""
    quic = client.protocol
    for seq in order:
        quic.h3.send_datagram(client.session_id,
                              pack_frame(seq, frames[seq]))
        quic.transmit()
        await asyncio.sleep(0)
    client.finish()


async def test_a_lost_datagram_is_concealed_and_words_keep_their_times(
    wt: RunningWt,
) -> None:
    frames = frames_of(load_pcm(audio_of(FIXTURE), RATE))
    lost = set(range(5, 15))  # 200 ms of the silence before speech
    runs: list[Transcript] = []
    for order in (list(range(len(frames))),
                  [i for i in range(len(frames)) if i not in lost]):
        async with open_session(wt.url, wt.certificate.sha256,
                                "datagram", KEY) as client:
            reading = asyncio.create_task(read_all(client))
            await send_in_order(client, frames, order)
            runs.append(await reading)
    whole, concealed = runs
    assert " ".join(concealed.finals) == reference(FIXTURE)
    assert closed(concealed)["audio"]["concealed_s"] == 0.2
    # Were the gap not filled, speech would be heard 200 ms early.
    assert speech_times(whole)
    assert speech_times(concealed) == speech_times(whole)


async def test_reordered_and_repeated_datagrams_are_placed_by_number(
    wt: RunningWt,
) -> None:
    frames = frames_of(load_pcm(audio_of(FIXTURE), RATE))
    paired = len(frames) // 2 * 2
    order = [i ^ 1 for i in range(paired)]  # each pair swapped: 1, 0, ...
    order += [*range(paired, len(frames)), 40, 41]  # two repeated
    async with open_session(wt.url, wt.certificate.sha256, "datagram",
                            KEY) as client:
        reading = asyncio.create_task(read_all(client))
        await send_in_order(client, frames, order)
        transcript = await reading
    assert " ".join(transcript.finals) == reference(FIXTURE)
    audio = closed(transcript)["audio"]
    assert audio["frames"] == len(frames)
    assert audio["concealed_s"] == 0.0
    assert audio["duplicate_frames"] == 2


async def test_a_datagram_too_large_for_a_packet_is_not_sent(
    wt: RunningWt,
) -> None:
    pcm = load_pcm(audio_of(FIXTURE), RATE)
    async with open_session(wt.url, wt.certificate.sha256, "datagram",
                            KEY) as client:
        limit = client.datagrams.limit
        with pytest.raises(DatagramTooLargeError,
                           match=f"carries at most {limit}"):
            client.datagrams.send(bytes(limit))
        transcript = await transcribe(client, pcm, realtime=False)
    # 1200-byte packets, less the most a packet, a DATAGRAM frame and
    # the session's ID can take.
    assert limit == datagram_limit(1200, 0) == 1155
    assert " ".join(transcript.finals) == reference(FIXTURE)
    assert closed(transcript)["audio"]["errors"] == 0


@pytest.mark.parametrize(("datagram", "code"), [
    (b"\0\0\1", "datagram_too_short"),
    (pack_frame(0, bytes(1_100)), "datagram_too_large"),
    (pack_frame(0, bytes(100)), "invalid_audio_frame"),
    (pack_frame(100_000, bytes(960)), "sequence_out_of_range"),
])
async def test_a_bad_datagram_gets_an_error_event_and_the_session_goes_on(
    wt: RunningWt, datagram: bytes, code: str,
) -> None:
    pcm = load_pcm(audio_of(FIXTURE), RATE)
    async with open_session(wt.url, wt.certificate.sha256, "datagram",
                            KEY) as client:
        client.protocol.h3.send_datagram(client.session_id, datagram)
        transcript = await transcribe(client, pcm, realtime=False)
    (error,) = of_type(transcript, "error")
    assert error["error"]["code"] == code
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["param"] is None
    assert error["event_id"].startswith("event_")
    assert " ".join(transcript.finals) == reference(FIXTURE)
    assert closed(transcript)["audio"]["errors"] == 1


async def test_audio_sent_the_other_way_is_refused(wt: RunningWt) -> None:
    pcm = load_pcm(audio_of(FIXTURE), RATE)
    async with open_session(wt.url, wt.certificate.sha256, "stream",
                            KEY) as on_stream:
        on_stream.datagrams.send(bytes(960))
        by_stream = await transcribe(on_stream, pcm, realtime=False)
    async with open_session(wt.url, wt.certificate.sha256, "datagram",
                            KEY) as by_datagram:
        h3 = by_datagram.protocol.h3
        extra = h3.create_webtransport_stream(by_datagram.session_id,
                                              is_unidirectional=True)
        by_datagram.protocol._quic.send_stream_data(extra, bytes(964))
        by_datagrams = await transcribe(by_datagram, pcm, realtime=False)
    assert error_codes(by_stream) == ["unexpected_datagram"]
    assert error_codes(by_datagrams) == ["unexpected_stream"]
    for transcript in (by_stream, by_datagrams):
        assert " ".join(transcript.finals) == reference(FIXTURE)


@pytest.mark.parametrize(("query", "mode", "status", "code"), [
    ("", "datagram", 401, "missing_api_key"),
    (f"?key=not-{KEY}", "datagram", 401, "invalid_api_key"),
    (f"?key={KEY}", "pigeon", 400, "invalid_request"),
    (f"?key={KEY}&intent=conversation", "stream", 400, "invalid_request"),
])
async def test_a_bad_request_is_refused_before_the_session(
    wt: RunningWt, query: str, mode: str, status: int, code: str,
) -> None:
    with pytest.raises(SessionRefusedError) as refused:
        async with open_session(wt.url + query, wt.certificate.sha256,
                                mode):
            pass
    assert refused.value.status == status
    body = json.loads(refused.value.body)
    assert body["type"] == "error" and body["error"]["code"] == code
    assert wt.server.handlers == {}


async def test_a_full_or_loading_server_answers_503(
    lexicon: Lexicon,
) -> None:
    settings = WtSettings(max_sessions=1)
    async with running_wt_server(lexicon, settings) as wt, open_session(
            wt.url, wt.certificate.sha256, key=KEY):
        with pytest.raises(SessionRefusedError) as full:
            async with open_session(wt.url, wt.certificate.sha256,
                                    key=KEY):
                pass
    async with running_wt_server(lexicon, ready=False) as wt:
        with pytest.raises(SessionRefusedError) as loading:
            async with open_session(wt.url, wt.certificate.sha256,
                                    key=KEY):
                pass
    assert full.value.status == loading.value.status == 503
    assert json.loads(full.value.body)["error"]["message"] == (
        "at capacity: 1 sessions")
    assert json.loads(loading.value.body)["error"]["message"] == (
        "model loading")


async def test_an_unknown_path_is_404(wt: RunningWt) -> None:
    with pytest.raises(SessionRefusedError) as refused:
        async with open_session(wt.url.replace("realtime", "listen"),
                                wt.certificate.sha256, key=KEY):
            pass
    assert refused.value.status == 404


async def test_a_server_with_another_certificate_is_not_trusted(
    wt: RunningWt,
) -> None:
    wrong = bytes(32)
    with pytest.raises(CertificateMismatchError):
        async with open_session(wt.url, wrong, key=KEY):
            pass


async def test_a_line_too_long_closes_only_its_session(
    wt: RunningWt,
) -> None:
    pcm = load_pcm(audio_of(FIXTURE), RATE)
    async with open_session(wt.url, wt.certificate.sha256, "datagram",
                            KEY) as bad, open_session(
            wt.url, wt.certificate.sha256, "datagram", KEY) as good:
        reading_bad = asyncio.create_task(read_all(bad))
        serving = asyncio.create_task(transcribe(good, pcm,
                                                 realtime=False))
        bad.protocol.h3.send_datagram(bad.session_id, b"\xff")
        bad.send_event({"type": "input_audio_buffer.commit",
                        "pad": "x" * 70_000})
        misbehaved, served = await asyncio.gather(reading_bad, serving)
    assert error_codes(misbehaved) == ["datagram_too_short"]
    report = closed(misbehaved)
    assert report["code"] == 1009
    assert report["reason"].startswith("message too big: a line of")
    assert " ".join(served.finals) == reference(FIXTURE)
    assert closed(served)["code"] == 1000


async def test_a_line_that_is_not_text_gets_an_error_event(
    wt: RunningWt,
) -> None:
    pcm = load_pcm(audio_of(FIXTURE), RATE)
    async with open_session(wt.url, wt.certificate.sha256, "stream",
                            KEY) as client:
        reading = asyncio.create_task(read_all(client))
        client.protocol._quic.send_stream_data(
            client._events_stream, b"\xff\xfe\n")
        for frame in frames_of(pcm):
            client.send_audio(frame)
            await asyncio.sleep(0)
        client.finish()
        transcript = await reading
    assert error_codes(transcript) == ["invalid_event"]
    assert " ".join(transcript.finals) == reference(FIXTURE)


@pytest.mark.parametrize("leaving", ["capsule", "connection"])
async def test_a_client_that_leaves_frees_its_session(
    wt: RunningWt, leaving: str,
) -> None:
    frames = frames_of(load_pcm(audio_of(FIXTURE), RATE))
    async with open_session(wt.url, wt.certificate.sha256, "datagram",
                            KEY) as client:
        for frame in frames[:50]:
            client.send_audio(frame)
        assert len(wt.server.handlers) == 1  # since the CONNECT's 200
        if leaving == "connection":  # no close capsule: QUIC's close
            client.protocol.close()
            await client.protocol.wait_closed()
    async with asyncio.timeout(WAIT_S):
        while wt.server.handlers:  # the close capsule, then the end
            await asyncio.sleep(0.01)


async def test_a_client_that_does_not_close_is_closed_by_the_server(
    lexicon: Lexicon,
) -> None:
    settings = WtSettings(close_timeout_s=0.1)
    async with running_wt_server(lexicon, settings) as wt, open_session(
            wt.url, wt.certificate.sha256, "stream", KEY) as client:
        client.finish()
        transcript = await read_all(client)  # to the results' end
        async with asyncio.timeout(WAIT_S):
            while wt.server.handlers:  # then the close capsule
                await asyncio.sleep(0.01)
    assert closed(transcript)["code"] == 1000
    assert client.closed is not None
    assert (client.closed.code, client.closed.reason) == (1000, "")


async def test_shutdown_finishes_the_utterance_and_closes_1001(
    lexicon: Lexicon,
) -> None:
    frames = frames_of(load_pcm(audio_of(FIXTURE), RATE))
    async with running_wt_server(lexicon) as wt, open_session(
            wt.url, wt.certificate.sha256, "stream", KEY) as client:
        reading = asyncio.create_task(read_all(client))
        for frame in frames:
            client.send_audio(frame)
        await wt.server.shutdown()
        transcript = await reading
    assert closed(transcript)["code"] == 1001


async def test_shutdown_cuts_a_session_whose_client_never_closes(
    lexicon: Lexicon,
) -> None:
    settings = WtSettings(shutdown_grace_s=0.2, close_timeout_s=60.0)
    async with running_wt_server(lexicon, settings) as wt, open_session(
            wt.url, wt.certificate.sha256, "stream", KEY) as client:
        reading = asyncio.create_task(read_all(client))
        async with asyncio.timeout(WAIT_S):
            await wt.server.shutdown()  # 0.2 s, not a minute
        transcript = await reading
    assert closed(transcript)["code"] == 1001
    assert wt.server.handlers == {}
