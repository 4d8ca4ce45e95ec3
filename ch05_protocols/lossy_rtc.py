"""The lossy-link lab's WebRTC transport: Opus over RTP, results on SCTP.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
The service (`python -m ch05_protocols rtc`, the mock at model time
zero, as for every transport) takes a call signalled as OpenAI's
Realtime API signals it; the lab's chunks become an aiortc audio track
(`ChunkTrack`), each 20 ms chunk one Opus frame in one RTP packet,
never sent again when lost: the server fills the gap in the RTP
timestamps with silence and counts it as audio lost. Results come back
on the `oai-events` data channel (SCTP: reliable and in order), as
Deepgram's `Results` (`--dialect deepgram`: each says what stream time
it covers, which OpenAI's realtime events do not). After the last
chunk, half a second of silence pushes the last frames out of the
server's jitter buffer, then RTCP BYE says the input is over; the
server's last results follow, then it closes the channel, and the
call's stats say how much audio was lost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from ch05_protocols.compare import KEY
from ch05_protocols.lossy_speech import CHUNK_S
from ch05_protocols.lossy_stream import (
    CONNECT_TIMEOUT_S,
    Event,
    Received,
    deepgram_covered,
    service_env,
)
from ch05_protocols.rtc_client import call_stats, offer_of, post_offer
from ch05_protocols.service_process import running

RATE = 24_000  # as the service's calls are read
TAIL_S = 0.5  # silence after the last chunk, for the jitter buffer
QUEUED_CHUNKS = 50  # a second of audio waiting for the encoder
STATS_TIMEOUT_S = 10.0


class ChunkTrack(MediaStreamTrack):
    """The lab's chunks as a microphone: each handed to the encoder as
    it is sent; None ends the track."""

    kind = "audio"

    def __init__(self, rate: int = RATE) -> None:
        super().__init__()
        self.rate, self.pts = rate, 0
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue(
            QUEUED_CHUNKS)

    async def recv(self) -> av.AudioFrame:
        chunk = await self.chunks.get()
        if chunk is None:
            self.stop()
            raise MediaStreamError
        samples = np.frombuffer(chunk, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16",
                                           layout="mono")
        frame.sample_rate, frame.time_base = self.rate, Fraction(1,
                                                                 self.rate)
        frame.pts, self.pts = self.pts, self.pts + samples.shape[1]
        return frame


@dataclass
class CallStream:
    pc: RTCPeerConnection
    track: ChunkTrack
    sender: RTCRtpSender
    url: str
    key: str
    call_id: str
    messages: asyncio.Queue[str | None]  # None: the channel closed
    sent_s: float = field(default=0.0, init=False)

    async def send(self, chunk: bytes) -> None:
        await self.track.chunks.put(chunk)
        self.sent_s += CHUNK_S

    async def finish(self) -> None:
        silence = bytes(round(CHUNK_S * self.track.rate) * 2)
        for _ in range(round(TAIL_S / CHUNK_S)):  # paced, as spoken
            await asyncio.sleep(CHUNK_S)
            await self.track.chunks.put(silence)
        await self.track.chunks.put(None)
        await self.sender.stop()  # RTCP BYE: the input is over

    async def events(self) -> AsyncIterator[Event]:
        while (message := await self.messages.get()) is not None:
            if found := deepgram_covered(json.loads(message)):
                yield found
        async with asyncio.timeout(STATS_TIMEOUT_S):
            stats = await call_stats(self.url, self.key, self.call_id)
        audio = stats["audio"]
        yield Received(round(self.sent_s - audio["lost_s"]
                             - audio["dropped_s"], 3))

    async def close(self) -> None:
        await self.pc.close()


def listen(channel: RTCDataChannel) -> asyncio.Queue[str | None]:
    # Unbounded: the server sends a result per chunk at most, and the
    # lab reads them as they come.
    messages: asyncio.Queue[str | None] = asyncio.Queue()
    channel.on("message", messages.put_nowait)
    channel.on("close", lambda: messages.put_nowait(None))
    return messages


async def connected(pc: RTCPeerConnection, channel: RTCDataChannel
                    ) -> None:
    """Until ICE, DTLS and the data channel are up."""
    ready = asyncio.Event()

    def check() -> None:
        if pc.connectionState == "connected" and (
                channel.readyState == "open"):
            ready.set()

    pc.on("connectionstatechange", check)
    channel.on("open", check)
    check()
    await ready.wait()


@dataclass
class WebRtcTransport:
    key: str = KEY
    name: str = field(default="webrtc", init=False)
    rate: int = field(default=RATE, init=False)

    def serve(self) -> AbstractAsyncContextManager[int]:
        return self.service()

    @asynccontextmanager
    async def service(self) -> AsyncIterator[int]:
        args = ["rtc", "--port", "0", "--dialect", "deepgram"]
        async with running(args, service_env()) as served:
            yield served.port

    async def connect(self, port: int) -> CallStream:
        url = f"http://127.0.0.1:{port}"
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = ChunkTrack(self.rate)
        sender = pc.addTrack(track)
        channel = pc.createDataChannel("oai-events")
        messages = listen(channel)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await pc.setLocalDescription(await pc.createOffer())
                answer, call_id = await post_offer(url, self.key,
                                                   offer_of(pc))
                await pc.setRemoteDescription(
                    RTCSessionDescription(sdp=answer, type="answer"))
                await connected(pc, channel)
        except BaseException:
            await pc.close()
            raise
        return CallStream(pc, track, sender, url, self.key, call_id,
                          messages)
