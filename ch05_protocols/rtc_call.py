"""One WebRTC call: a peer connection, its audio, its events, its end.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
Once its offer is answered, a call waits (at most `connect_timeout_s`)
for ICE and DTLS to connect and for the client's `oai-events` data
channel to open; then chapter 4's stream handler serves it, through the
`DataChannelConnection` adapter, while a pump moves each decoded frame
from the remote track to the adapter as 24 kHz PCM, timing it for the
jitter-buffer delay on the way. The call ends when the handler does
(the client's RTCP BYE, a close, the idle timeout, a shutdown), or
when ICE fails or the peer connection closes; whatever ends it, the
peer connection is closed and the call's figures kept for its stats
route: the negotiated codec, the jitter-buffer delay, the audio lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiortc import (
    MediaStreamTrack,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpReceiver,
)
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame
from pydantic import BaseModel

from ch04_streaming.dialects.dialect import Closing
from ch04_streaming.stream_handler import Connection, StreamHandler
from ch04_streaming.wire import WireMessage
from ch05_protocols import audio_jitter
from ch05_protocols.jitter_delay import JitterDelay
from ch05_protocols.rtc_audio import TrackPcm
from ch05_protocols.rtc_connection import (
    ChannelLimits,
    DataChannelConnection,
)

log = logging.getLogger("ch05_protocols")

EVENTS_LABEL = "oai-events"  # the data channel OpenAI's clients open
CLOCK_RATE = 48_000  # Opus's RTP clock, whatever its audio's rate

# The composition root's recipe for the handler that serves one call.
HandlerFactory = Callable[[Connection], StreamHandler]


@dataclass(frozen=True)
class CallLimits:
    connect_timeout_s: float = 10.0  # ICE, DTLS and the data channel
    close_timeout_s: float = 5.0  # for the peer connection to close
    max_gap_s: float = 2.0  # lost audio filled with silence, per gap
    channel: ChannelLimits = field(default_factory=ChannelLimits)


class JitterBufferStats(BaseModel):
    frames: int  # decoded frames timed
    delay_ms_p50: float | None
    delay_ms_p95: float | None
    delay_ms_max: float | None


class AudioStats(BaseModel):
    received_s: float
    lost_s: float  # gaps in the RTP timestamps, filled with silence
    late_frames: int
    dropped_s: float  # found the inbox full


class RtpStats(BaseModel):
    packets_received: int
    packets_lost: int
    jitter_ms: float  # RFC 3550's interarrival jitter


class CallStats(WireMessage):
    type: Literal["realtime.call.stats"] = "realtime.call.stats"
    id: str
    status: Literal["connecting", "active", "ended"]
    codec: str
    jitter_buffer: JitterBufferStats
    audio: AudioStats
    rtp: RtpStats
    outcome: str | None = None  # how it ended


@dataclass(eq=False)
class RtcCall:
    id: str
    pc: RTCPeerConnection
    codec: str  # as the answer negotiated it: `opus/48000/2`
    limits: CallLimits = field(default_factory=CallLimits)
    first_event: str | None = None  # the session the caller asked for
    clock: Callable[[], float] = time.monotonic
    status: Literal["connecting", "active", "ended"] = "connecting"
    outcome: str | None = None
    handler: StreamHandler | None = None
    connection: DataChannelConnection | None = None
    audio: TrackPcm = field(init=False)
    jitter: JitterDelay = field(init=False)
    _channel: asyncio.Future[RTCDataChannel | None] = field(init=False)
    _final: CallStats | None = None
    _stopped: bool = False  # shut down before it connected

    def __post_init__(self) -> None:
        self.audio = TrackPcm(max_gap_s=self.limits.max_gap_s)
        self.jitter = JitterDelay(self.clock)
        audio_jitter.install(self._receiver())  # a loss costs 20 ms
        self.jitter.watch(self._receiver())
        self._channel = asyncio.get_running_loop().create_future()
        self.pc.on("datachannel", self._datachannel)
        self.pc.on("connectionstatechange", self._state_changed)

    def _receiver(self) -> RTCRtpReceiver:
        return self.pc.getTransceivers()[0].receiver

    def _datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_LABEL or self._channel.done():
            channel.close()  # events travel on one channel
        elif channel.readyState == "open":
            self._channel.set_result(channel)
        else:
            channel.on("open", lambda: self._datachannel(channel))

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state not in ("failed", "closed"):
            return
        if not self._channel.done():
            self._channel.set_result(None)
        if self.connection is not None:
            self.connection.lost()

    def shutdown(self) -> None:
        """The server is stopping: finish open utterances, then close;
        a call still connecting ends at once."""
        if self.handler is not None:
            self.handler.shutdown()
        elif not self._channel.done():
            self._stopped = True
            self._channel.set_result(None)

    async def run(self, new_handler: HandlerFactory) -> None:
        """Serve the call from connection to close; always hang up."""
        try:
            self.outcome = await self._serve(new_handler)
        finally:
            self.status = "ended"
            await self._hang_up()
            self._final = await self.stats()  # the receiver keeps them
            log.info("event=call_ended call=%s codec=%s outcome=%r"
                     " jitter_p50_ms=%s lost_s=%s", self.id, self.codec,
                     self.outcome, self._final.jitter_buffer.delay_ms_p50,
                     self._final.audio.lost_s)

    async def _serve(self, new_handler: HandlerFactory) -> str:
        try:
            async with asyncio.timeout(self.limits.connect_timeout_s):
                channel = await self._channel
        except TimeoutError:
            return (f"not connected within"
                    f" {self.limits.connect_timeout_s:g} s")
        if channel is None:
            return ("server shutting down" if self._stopped
                    else f"peer connection {self.pc.connectionState}")
        self.connection = DataChannelConnection(channel,
                                                self.limits.channel)
        if self.first_event is not None:
            self.connection.event(self.first_event)
        self.handler = new_handler(self.connection)
        self.status = "active"
        log.info("event=call_connected call=%s codec=%s", self.id,
                 self.codec)
        pump = asyncio.create_task(self._pump(self._receiver().track,
                                              self.connection))
        try:
            return describe(await self.handler.run())
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    # --8<-- [start:track_pump]
    async def _pump(self, track: MediaStreamTrack,
                    connection: DataChannelConnection) -> None:
        """Decoded frames -> PCM for the handler, until the track ends:
        by the client's RTCP BYE (its input is over), or with the peer
        connection (the client is gone)."""
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame)  # an audio track
                self.jitter.decoded(frame.pts)
                connection.audio(self.audio.convert(frame))
        except MediaStreamError:
            # The client's RTCP BYE, if still connected; a peer
            # connection that closed ends the track too, and the call.
            if self.pc.connectionState == "connected":
                connection.audio(self.audio.flush())
                connection.end_of_input()
    # --8<-- [end:track_pump]

    async def _hang_up(self) -> None:
        try:
            async with asyncio.timeout(self.limits.close_timeout_s):
                await self.pc.close()
        except TimeoutError:
            log.warning("event=close_timeout call=%s", self.id)

    async def stats(self) -> CallStats:
        """The call's figures: live while it runs, final once ended."""
        if self._final is not None:
            return self._final
        delay = self.jitter.summary()
        counts = self.audio.counts()
        dropped = self.connection.dropped_s if self.connection else 0.0
        return CallStats(
            id=self.id, status=self.status, codec=self.codec,
            outcome=self.outcome,
            jitter_buffer=JitterBufferStats(
                frames=delay.frames, delay_ms_p50=delay.p50_ms,
                delay_ms_p95=delay.p95_ms, delay_ms_max=delay.max_ms),
            audio=AudioStats(received_s=counts.received_s,
                             lost_s=counts.lost_s,
                             late_frames=counts.late_frames,
                             dropped_s=round(dropped, 3)),
            rtp=await self._rtp_stats())

    async def _rtp_stats(self) -> RtpStats:
        """The receiver's own RTCP figures (RFC 3550)."""
        report = await self._receiver().getStats()
        for entry in report.values():
            if entry.type == "inbound-rtp":
                return RtpStats(
                    packets_received=entry.packetsReceived,
                    packets_lost=entry.packetsLost,
                    jitter_ms=round(entry.jitter * 1000 / CLOCK_RATE, 1))
        return RtpStats(packets_received=0, packets_lost=0, jitter_ms=0.0)


def describe(closing: Closing | None) -> str:
    if closing is None:
        return "closed by the client"
    return f"{closing.code} {closing.reason}".strip()
