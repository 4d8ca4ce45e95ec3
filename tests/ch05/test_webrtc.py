"""WebRTC ingest end to end: OpenAI's signalling, aiortc and its SDK as
clients, and every offer or key the service refuses (the browser page
is test_webrtc_page.py's).

Each call streams a fixture at the pace of speech, as Opus over a real
peer connection on this machine, and must come back as the fixture's
reference text on the `oai-events` data channel.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from av.frame import Frame
from openai import AsyncOpenAI

from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.settings import Settings
from ch05_protocols.rtc_client import (
    FileTrack,
    ReceivedEvent,
    SignallingError,
    call_stats,
    offer_of,
    post_offer,
    stream_file,
)
from ch05_protocols.rtc_settings import RtcSettings
from examples.service import running_service, wait_until_ready
from tests.ch04.harness import KEY, MANIFEST, audio_of
from tests.ch05.rtc_harness import running_rtc

CALLS = "/v1/realtime/calls"
SECRETS = "/v1/realtime/client_secrets"
SDP = {"Content-Type": "application/sdp"}


async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    """A body sent in chunks, its length not declared up front."""
    for _ in range(count):
        yield b"v" * size


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def utterances(fixture_id: str) -> list[str]:
    return [u.text for u in MANIFEST.get(fixture_id).utterances]


async def offer(codecs: Callable[[RTCRtpCodecCapability], bool] | None
                = None, kinds: tuple[str, ...] = ("audio",)) -> str:
    """An offer as aiortc writes one: these media, these audio codecs,
    and the `oai-events` data channel."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        for kind in kinds:
            transceiver = pc.addTransceiver(kind, direction="sendonly")
            if kind == "audio" and codecs is not None:
                offered = RTCRtpSender.getCapabilities("audio").codecs
                transceiver.setCodecPreferences(
                    [c for c in offered if codecs(c)])
        pc.createDataChannel("oai-events")
        await pc.setLocalDescription(await pc.createOffer())
        assert pc.localDescription is not None
        return pc.localDescription.sdp
    finally:
        await pc.close()


def error_of(reply: httpx.Response) -> dict[str, Any]:
    """OpenAI's error shape, and nothing else."""
    body: dict[str, Any] = reply.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


async def test_a_fixture_comes_back_as_its_reference_text(
    lexicon: Lexicon,
) -> None:
    async with running_rtc(lexicon) as running:
        result = await stream_file(audio_of("quick_brown_fox"),
                                   running.url, KEY)
        stats = await call_stats(running.url, KEY, result.call_id)
    assert result.transcripts == utterances("quick_brown_fox")
    assert (stats["codec"], stats["status"]) == ("opus/48000/2", "ended")
    # aiortc's jitter buffer lets a 20 ms frame go when the fourth after
    # it has arrived: about 80 ms, when nothing is lost.
    assert 50 <= stats["jitter_buffer"]["delay_ms_p50"] <= 500
    assert stats["jitter_buffer"]["frames"] >= 0.9 * len(result.chunks)
    assert stats["audio"]["lost_s"] == stats["rtp"]["packets_lost"] == 0
    # The client's clock dates every chunk it sent and event it read.
    sent = [chunk.sent_at for chunk in result.chunks]
    assert sent == sorted(sent)
    arrived = [e.at for e in result.events]
    assert arrived == sorted(arrived)
    heard = [e.at for e in result.events
             if e.event["type"].startswith("conversation.item.")]
    assert heard and min(heard) > sent[0]


async def refused(client: httpx.AsyncClient,
                  body: str | bytes | AsyncIterator[bytes],
                  headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    reply = await client.post(CALLS, content=body,
                              headers={**bearer(KEY), **headers})
    return reply.status_code, error_of(reply)


async def test_offers_that_cannot_be_answered_are_400_and_the_next_call_is_served(  # noqa: E501
    lexicon: Lexicon,
) -> None:
    def pcmu(c: RTCRtpCodecCapability) -> bool:
        return c.mimeType == "audio/PCMU"

    opus_offer = await offer()
    bad = {
        "no audio": await offer(kinds=()),
        "PCMU only": await offer(codecs=pcmu),
        "a made-up codec": (await offer(codecs=pcmu)).replace(
            "PCMU/8000", "L24/8000"),
        # Opus by name, at a rate aiortc does not have: aiortc itself
        # finds no codec in common.
        "opus at 16 kHz": opus_offer.replace("opus/48000/2",
                                             "opus/16000/2"),
        "video": await offer(kinds=("audio", "video")),
        "not SDP": "v=0\r\nm=audio x\r\n",
        "no ICE credentials": "\r\n".join(
            line for line in opus_offer.splitlines()
            if not line.startswith("a=ice-ufrag")),
    }
    async with running_rtc(lexicon) as running, httpx.AsyncClient(
            base_url=running.url) as client:
        answers = {name: await refused(client, sdp, SDP)
                   for name, sdp in bad.items()}
        wrong_type = await refused(client, opus_offer,
                                   {"Content-Type": "text/plain"})
        too_big = await refused(client, "v=0\r\n" * 20_000, SDP)
        too_big_unsaid = await refused(client, chunks(20, 8192), SDP)
        not_text = await refused(client, b"v=0\r\n\xff\xfe", SDP)
        result = await stream_file(audio_of("living_room"), running.url,
                                   KEY)
    assert {name: status for name, (status, _) in answers.items()} == {
        name: 400 for name in bad}
    assert all(e["code"] == "invalid_offer" and e["param"] == "sdp"
               and e["type"] == "invalid_request_error"
               for _, e in answers.values())
    messages = {name: e["message"] for name, (_, e) in answers.items()}
    assert messages["no audio"] == ("the offer has 0 audio m-lines; send"
                                    " exactly one audio track")
    assert messages["PCMU only"] == ("the offer's audio has PCMU/8000;"
                                     " this server takes opus/48000/2")
    assert "L24/8000" in messages["a made-up codec"]
    assert messages["opus at 16 kHz"].startswith("cannot answer the"
                                                  " offer: ")
    assert "audio only" in messages["video"]
    assert messages["not SDP"] == "the offer is not valid SDP"
    assert wrong_type[0] == 415
    assert too_big[0] == too_big_unsaid[0] == 413
    assert not_text == (400, {"message": "sdp is not UTF-8 text.",
                              "type": "invalid_request_error",
                              "param": "sdp", "code": "invalid_value"})
    assert result.transcripts == utterances("living_room")


@pytest.mark.parametrize(("authorization", "message"), [
    (None, "You didn't provide an API key"),
    ("Bearer not-the-key", "Incorrect API key provided."),
    (f"Basic {KEY}", "You didn't provide an API key"),
])
async def test_a_call_without_a_valid_key_is_401(
    lexicon: Lexicon, authorization: str | None, message: str,
) -> None:
    headers = {**SDP, **({"Authorization": authorization}
                         if authorization else {})}
    sdp = await offer()
    async with running_rtc(lexicon) as running, httpx.AsyncClient(
            base_url=running.url) as client:
        reply = await client.post(CALLS, content=sdp, headers=headers)
        with pytest.raises(SignallingError) as client_refused:
            await stream_file(audio_of("living_room"), running.url,
                              "not-the-key")
    error = error_of(reply)
    assert reply.status_code == 401
    assert error["message"].startswith(message)
    assert error["type"] == "invalid_request_error"
    assert client_refused.value.status == 401


async def test_a_client_secret_opens_calls_until_it_expires(
    lexicon: Lexicon,
) -> None:
    sdp_without_audio = await offer(kinds=())
    async with running_rtc(lexicon) as running, httpx.AsyncClient(
            base_url=running.url) as client:
        reply = await client.post(SECRETS, headers=bearer(KEY), json={
            "expires_after": {"anchor": "created_at", "seconds": 10},
            "session": {"type": "transcription"}})
        secret = reply.json()
        # Live: past the key check, to the offer's own fault.
        live = await client.post(CALLS, content=sdp_without_audio,
                                 headers={**bearer(secret["value"]), **SDP})
        running.clock.now += 10
        expired = await client.post(
            CALLS, content=sdp_without_audio,
            headers={**bearer(secret["value"]), **SDP})
        # A secret cannot make more secrets.
        minted = await client.post(SECRETS,
                                   headers=bearer(secret["value"]))
    assert reply.status_code == 200
    assert secret["value"].startswith("ek_")
    assert secret["expires_at"] == int(running.clock.now)
    assert secret["session"]["type"] == "transcription"
    assert secret["session"]["object"] == "realtime.transcription_session"
    assert live.status_code == 400
    assert expired.status_code == 401
    assert "expired" in error_of(expired)["message"]
    assert minted.status_code == 401


async def test_client_secrets_are_refused_429_when_too_many_are_live(
    lexicon: Lexicon,
) -> None:
    settings = RtcSettings(max_client_secrets=1)
    async with running_rtc(lexicon, settings) as running, httpx.AsyncClient(
            base_url=running.url) as client:
        first = await client.post(SECRETS, headers=bearer(KEY))
        second = await client.post(SECRETS, headers=bearer(KEY))
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "10"
    assert error_of(second)["type"] == "rate_limit_error"


@pytest.mark.parametrize(("body", "param"), [
    ({"expires_after": {"seconds": 9}}, "expires_after.seconds"),
    ({"expires_after": {"seconds": 7201}}, "expires_after.seconds"),
    ({"session": {"type": "realtime"}}, "session.type"),
    ({"expire_after": {"seconds": 60}}, "expire_after"),
])
async def test_a_client_secret_request_out_of_bounds_is_400(
    lexicon: Lexicon, body: dict[str, Any], param: str,
) -> None:
    async with running_rtc(lexicon) as running, httpx.AsyncClient(
            base_url=running.url) as client:
        reply = await client.post(SECRETS, headers=bearer(KEY), json=body)
    assert reply.status_code == 400
    assert error_of(reply)["param"] == param


async def test_a_full_service_refuses_and_a_call_that_never_connects_frees_its_slot(  # noqa: E501
    lexicon: Lexicon,
) -> None:
    settings = RtcSettings(max_calls=1, connect_timeout_s=0.5)
    sdp = await offer()
    async with running_rtc(lexicon, settings) as running, httpx.AsyncClient(
            base_url=running.url) as client:
        # Answered, but the client never sets the answer: no ICE.
        first = await client.post(CALLS, content=sdp,
                                  headers={**bearer(KEY), **SDP})
        full = await client.post(CALLS, content=sdp,
                                 headers={**bearer(KEY), **SDP})
        call_id = first.headers["Location"].rsplit("/", 1)[-1]
        async with asyncio.timeout(10):
            await running.calls.tasks[call_id]
        stats = (await client.get(f"{CALLS}/{call_id}",
                                  headers=bearer(KEY))).json()
        missing = await client.get(f"{CALLS}/rtc_none", headers=bearer(KEY))
        result = await stream_file(audio_of("living_room"), running.url,
                                   KEY)
    assert first.status_code == 201
    assert first.headers["content-type"] == "application/sdp"
    assert first.text.startswith("v=0")
    assert full.status_code == 503 and full.headers["Retry-After"] == "1"
    assert error_of(full)["message"] == ("at capacity: 1 calls: retry in"
                                         " 1 s")
    assert (stats["status"], stats["outcome"]) == (
        "ended", "not connected within 0.5 s")
    assert missing.status_code == 404
    assert result.transcripts == utterances("living_room")


async def test_a_call_that_goes_quiet_is_closed_with_its_reason(
    lexicon: Lexicon,
) -> None:
    """Audio stops, yet the peer connection stays up: the idle timeout
    ends the call, and the data channel's last event says why."""
    settings = RtcSettings(speech=Settings(idle_timeout_s=0.5))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(SilenceThenNothing())
    channel = pc.createDataChannel("oai-events")
    events: list[dict[str, Any]] = []
    closed = asyncio.Event()
    channel.on("message", lambda text: events.append(json.loads(text)))
    channel.on("close", closed.set)
    try:
        async with running_rtc(lexicon, settings) as running:
            await pc.setLocalDescription(await pc.createOffer())
            answer, _ = await post_offer(running.url, KEY, offer_of(pc))
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=answer, type="answer"))
            async with asyncio.timeout(20):
                await closed.wait()
    finally:
        await pc.close()
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["code"] == "session_closed"
    assert events[-1]["error"]["message"] == "1000 idle timeout"


class SilenceThenNothing(AudioStreamTrack):
    """Half a second of silence, then no more frames, ever: a client
    whose microphone stopped while its connection stayed up."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0
        self.never = asyncio.Event()

    async def recv(self) -> Frame:
        self.frames += 1
        if self.frames > 25:
            await self.never.wait()
        return await super().recv()


async def test_sigterm_finishes_the_open_utterance_then_exits_0() -> None:
    """`python -m ch05_protocols rtc` as an operator runs it: SIGTERM
    mid-sentence, and the call still gets the final of what was said,
    then the reason it ends; the process exits 0."""
    args = ("-m", "ch05_protocols", "rtc", "--port", "0")
    env = {"SPEECH_API_KEYS": "rtc-key", "CH04_LOAD_S": "0",
           "CH04_WARMUP_S": "0", "CH04_LEXICON_CACHE": ""}
    speaking = asyncio.Event()

    def on_event(received: ReceivedEvent) -> None:
        if received.event["type"] == "input_audio_buffer.speech_started":
            speaking.set()

    async with running_service(args, env) as service:
        await wait_until_ready(service.port)
        streaming = asyncio.create_task(stream_file(
            audio_of("quick_brown_fox"), f"http://127.0.0.1:{service.port}",
            "rtc-key", on_event=on_event))
        async with asyncio.timeout(30):
            await speaking.wait()
            service.process.terminate()
            result = await streaming
            exit_code = await service.process.wait()
    assert exit_code == 0
    said = result.transcripts
    assert len(said) == 1
    assert "the quick brown fox jumps over the lazy dog".startswith(said[0])
    last = result.events[-1].event
    assert last["error"] == {"type": "server_error",
                             "code": "session_closed",
                             "message": "1001 server shutting down",
                             "param": None, "event_id": None}


def as_fields(form: dict[str, str]) -> list[tuple[str, Any]]:
    """Multipart fields (no file name), as OpenAI's SDK sends them."""
    return [(name, (None, value.encode())) for name, value in form.items()]


@pytest.mark.parametrize(("form", "param", "message"), [
    ({"session": '{"type": "transcription"}'}, "sdp",
     "Missing required parameter: 'sdp'."),
    ({"sdp": "OFFER", "session": '{"type": "realtime"}'}, "session.type",
     "Invalid value for 'session.type'"),
    ({"sdp": "OFFER", "session": "not json"}, "session",
     "Invalid value for 'session'"),
    ({"sdp": "OFFER", "session": "{}", "extra": "x"}, None,
     "Invalid multipart body: Too many fields"),
])
async def test_a_multipart_offer_with_bad_fields_is_400(
    lexicon: Lexicon, form: dict[str, str], param: str | None,
    message: str,
) -> None:
    sdp = await offer()
    form = {name: value.replace("OFFER", sdp) for name, value in form.items()}
    async with running_rtc(lexicon) as running, httpx.AsyncClient(
            base_url=running.url) as client:
        reply = await client.post(CALLS, headers=bearer(KEY),
                                  files=as_fields(form))
    error = error_of(reply)
    assert reply.status_code == 400
    assert error["param"] == param
    assert error["message"].startswith(message)


async def test_calls_in_deepgrams_dialect_take_no_openai_session(
    lexicon: Lexicon,
) -> None:
    """A session asked for with the offer is refused by name; one made
    with a client secret is not the call's to apply, and the call is
    served in Deepgram's dialect all the same."""
    fox = "quick_brown_fox"
    session = json.dumps({"type": "transcription"})
    async with running_rtc(lexicon, RtcSettings(dialect="deepgram")
                           ) as running, httpx.AsyncClient(
            base_url=running.url) as client:
        refused = await client.post(CALLS, headers=bearer(KEY),
                                    files=as_fields({"sdp": await offer(),
                                                     "session": session}))
        secret = await client.post(SECRETS, headers=bearer(KEY),
                                   json={"session": {"type":
                                                     "transcription"}})
        result = await stream_file(audio_of(fox), running.url,
                                   secret.json()["value"])
    error = error_of(refused)
    assert (refused.status_code, error["param"]) == (400, "session")
    assert "take no session" in error["message"]
    types = {e.event["type"] for e in result.events}
    assert "error" not in types and "session.updated" not in types
    finals = [e.event["channel"]["alternatives"][0]["transcript"]
              for e in result.events
              if e.event["type"] == "Results" and e.event["is_final"]]
    assert " ".join(t for t in finals if t) == " ".join(utterances(fox))


async def test_an_offer_sent_as_a_file_is_400(lexicon: Lexicon) -> None:
    sdp = await offer()
    async with running_rtc(lexicon) as running, httpx.AsyncClient(
            base_url=running.url) as client:
        reply = await client.post(
            CALLS, headers=bearer(KEY),
            files={"sdp": ("offer.sdp", sdp.encode(), "application/sdp")})
    assert reply.status_code == 400
    assert "Too many files" in error_of(reply)["message"]


async def test_openais_sdk_signals_a_call_with_its_session(
    lexicon: Lexicon,
) -> None:
    """OpenAI's own SDK asks for a client secret, then sends the offer
    as multipart with a session; the call opens with `session.created`,
    then `session.updated` with what the SDK asked for."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(SilenceThenNothing())
    channel = pc.createDataChannel("oai-events")
    other = pc.createDataChannel("metrics")  # events go on one channel
    other_closed = asyncio.Event()
    other.on("close", other_closed.set)
    events: list[dict[str, Any]] = []
    both = asyncio.Event()

    @channel.on("message")
    def received(text: str) -> None:
        events.append(json.loads(text))
        if len(events) == 2:
            both.set()

    asked: Any = {"type": "transcription", "audio": {
        "input": {"transcription": {"model": "whisper-1"}}}}
    try:
        async with running_rtc(lexicon) as running:
            server = AsyncOpenAI(api_key=KEY, base_url=f"{running.url}/v1",
                                 max_retries=0)
            secret = await server.realtime.client_secrets.create(
                expires_after={"anchor": "created_at", "seconds": 60},
                session={"type": "transcription"})
            page = AsyncOpenAI(api_key=secret.value,
                               base_url=f"{running.url}/v1", max_retries=0)
            await pc.setLocalDescription(await pc.createOffer())
            answer = await page.realtime.calls.create(sdp=offer_of(pc),
                                                      session=asked)
            await pc.setRemoteDescription(RTCSessionDescription(
                sdp=answer.content.decode(), type="answer"))
            async with asyncio.timeout(10):
                await both.wait()
                await other_closed.wait()
            await server.close()
            await page.close()
    finally:
        await pc.close()
    assert secret.value.startswith("ek_")
    assert secret.session.type == "transcription"
    assert answer.response.status_code == 201
    assert answer.response.headers["location"].startswith(
        "/v1/realtime/calls/rtc_")
    assert [e["type"] for e in events[:2]] == ["session.created",
                                               "session.updated"]
    updated = events[1]["session"]["audio"]["input"]
    assert updated["transcription"]["model"] == "whisper-1"


async def test_a_client_that_hangs_up_mid_call_frees_its_call(
    lexicon: Lexicon,
) -> None:
    """The client closes its peer connection while it speaks, without
    a BYE: the call ends as closed by the client, at once."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(FileTrack(audio_of("quick_brown_fox"), time.monotonic))
    channel = pc.createDataChannel("oai-events")
    speaking = asyncio.Event()

    @channel.on("message")
    def received(text: str) -> None:
        if json.loads(text)["type"] == "input_audio_buffer.speech_started":
            speaking.set()

    async with running_rtc(lexicon) as running:
        try:
            await pc.setLocalDescription(await pc.createOffer())
            answer, call_id = await post_offer(running.url, KEY,
                                               offer_of(pc))
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=answer, type="answer"))
            async with asyncio.timeout(20):
                await speaking.wait()
        finally:
            await pc.close()
        async with asyncio.timeout(10):
            await running.calls.tasks[call_id]
        stats = await call_stats(running.url, KEY, call_id)
    assert (stats["status"], stats["outcome"]) == ("ended",
                                                   "closed by the client")
    assert stats["audio"]["received_s"] > 0


async def test_a_call_still_connecting_ends_at_once_on_shutdown(
    lexicon: Lexicon,
) -> None:
    sdp = await offer()
    settings = RtcSettings(connect_timeout_s=60.0, shutdown_grace_s=60.0)
    async with running_rtc(lexicon, settings) as running, httpx.AsyncClient(
            base_url=running.url) as client:
        reply = await client.post(CALLS, content=sdp,
                                  headers={**bearer(KEY), **SDP})
        call_id = reply.headers["Location"].rsplit("/", 1)[-1]
    stats = await running.calls.stats(call_id)
    assert stats is not None
    assert stats.outcome == "server shutting down"


async def test_the_client_command_prints_transcript_codec_and_delay(
    lexicon: Lexicon,
) -> None:
    async with running_rtc(lexicon) as running:
        ran = await run_client(str(audio_of("living_room")), "--url",
                               running.url, "--key", KEY)
        refused = await run_client(str(audio_of("living_room")), "--url",
                                   running.url, "--key", "not-the-key")
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "  [webrtc] turn off the lights in the living room"
    assert lines[2] == "  codec: opus/48000/2"
    assert re.fullmatch(r"  jitter buffer: \d+\.\d ms median, .*",
                        lines[3])
    assert refused.returncode == 1
    assert refused.stderr == ("refused: 401: Incorrect API key"
                              " provided.\n")


async def run_client(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m ch05_protocols.rtc_client ARGS`, to its end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ch05_protocols.rtc_client", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode,
                                       out.decode(), err.decode())
