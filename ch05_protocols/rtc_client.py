"""A WebRTC client of the speech service: a WAV file as a live microphone.

Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation".
aiortc plays a WAV file as an audio track, 20 ms frames paced by the
real clock as a microphone delivers them, and encodes them as Opus;
events travel as JSON on the `oai-events` data channel. Signalling is
OpenAI's: the offer is POSTed to `/v1/realtime/calls` as
`application/sdp` with the API key (or a client secret) as its Bearer
key, and the answer comes back in the 201. When the file is over the
track sends `tail_s` of silence, since the receiver's jitter buffer
holds the last frames until later ones push them out; then the sender
stops, and its RTCP BYE tells the server the input is over: the server
sends the last transcripts and closes the data channel. The send time
of every chunk and the arrival time of every event are kept, on one
clock, for a lab to measure latency with (`stream_file`).
`python -m ch05_protocols.rtc_client FILE --key KEY` prints the
completed transcripts, the negotiated codec and the jitter-buffer delay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile as sf
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

CHUNK_S = 0.02  # one Opus frame
COMPLETED = "conversation.item.input_audio_transcription.completed"
DEFAULT_URL = "http://127.0.0.1:8305"


@dataclass(frozen=True)
class SentChunk:
    index: int
    start_s: float  # where it starts in the file
    sent_at: float  # the client's clock when aiortc took it


@dataclass(frozen=True)
class ReceivedEvent:
    at: float  # the client's clock when it arrived
    event: dict[str, Any]


class SignallingError(Exception):
    """The service refused the offer (or the request for stats)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class FileTrack(MediaStreamTrack):
    """A mono WAV file as a microphone: 20 ms frames, at real time,
    then `tail_s` of silence, then the end of the track."""

    kind = "audio"

    def __init__(self, path: Path, clock: Callable[[], float],
                 tail_s: float = 0.5) -> None:
        super().__init__()
        samples, rate = sf.read(str(path), dtype="int16")
        self.rate = int(rate)
        if samples.ndim != 1:
            raise ValueError(f"{path}: need mono audio")
        self.step = round(self.rate * CHUNK_S)
        tail = np.zeros(round(tail_s * self.rate), np.int16)
        self.samples = np.concatenate([samples, tail])
        self.clock = clock
        self.chunks: list[SentChunk] = []
        self.finished = asyncio.Event()  # nothing more to send
        self._started: float | None = None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    async def recv(self) -> av.AudioFrame:
        index = len(self.chunks)
        offset = index * self.step
        if offset >= len(self.samples):
            self.finished.set()
            self.stop()
            raise MediaStreamError
        if self._started is None:
            self._started = time.monotonic()
        # Paced as a microphone delivers: a frame when it is recorded.
        await asyncio.sleep(self._started + index * CHUNK_S
                            - time.monotonic())
        chunk = self.samples[offset:offset + self.step]
        chunk = np.pad(chunk, (0, self.step - len(chunk)))
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = offset
        frame.time_base = Fraction(1, self.rate)
        self.chunks.append(SentChunk(index, offset / self.rate,
                                     self.clock()))
        return frame


@dataclass(frozen=True)
class RtcResult:
    call_id: str
    chunks: list[SentChunk]
    events: list[ReceivedEvent]

    @property
    def transcripts(self) -> list[str]:
        return [e.event["transcript"] for e in self.events
                if e.event.get("type") == COMPLETED]


def http(request: urllib.request.Request, timeout_s: float
         ) -> tuple[str, str | None]:
    """The body and `Location` of a 2xx; SignallingError otherwise."""
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return reply.read().decode(), reply.headers.get("Location")
    except urllib.error.HTTPError as error:
        with error:
            body = error.read().decode()
        try:
            message = json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = body
        raise SignallingError(error.code, message) from None
    except urllib.error.URLError as error:  # no answer at all
        raise SignallingError(0, f"cannot reach {request.full_url}:"
                              f" {error.reason}") from None


async def post_offer(url: str, key: str, sdp: str,
                     timeout_s: float = 10.0) -> tuple[str, str]:
    """POST the offer; the answer SDP and the call's id."""
    request = urllib.request.Request(
        f"{url}/v1/realtime/calls", data=sdp.encode(), method="POST",
        headers={"Authorization": f"Bearer {key}",
                 "Content-Type": "application/sdp"})
    answer, location = await asyncio.to_thread(http, request, timeout_s)
    if location is None:
        raise SignallingError(201, "the answer names no call (Location)")
    return answer, location.rsplit("/", 1)[-1]


async def call_stats(url: str, key: str, call_id: str,
                     timeout_s: float = 10.0) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/v1/realtime/calls/{call_id}",
        headers={"Authorization": f"Bearer {key}"})
    body, _ = await asyncio.to_thread(http, request, timeout_s)
    stats: dict[str, Any] = json.loads(body)
    return stats


@dataclass
class EventLog:
    """The data channel's events, each dated as it arrives."""

    clock: Callable[[], float]
    on_event: Callable[[ReceivedEvent], None] | None = None
    received: list[ReceivedEvent] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def listen(self, channel: RTCDataChannel, track: FileTrack) -> None:
        @channel.on("message")
        def received(message: str | bytes) -> None:
            self.received.append(ReceivedEvent(self.clock(),
                                               json.loads(message)))
            if self.on_event is not None:
                self.on_event(self.received[-1])

        @channel.on("close")
        def ended() -> None:
            self.closed.set()
            track.finished.set()  # the server ended the call: stop


# --8<-- [start:rtc_client]
async def stream_file(
    path: Path, url: str, key: str, *,
    clock: Callable[[], float] = time.monotonic,
    on_event: Callable[[ReceivedEvent], None] | None = None,
    tail_s: float = 0.5, slack_s: float = 30.0,
) -> RtcResult:
    """Stream `path` over one WebRTC call; every event, dated."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = FileTrack(path, clock, tail_s)
    sender = pc.addTrack(track)
    events = EventLog(clock, on_event)
    events.listen(pc.createDataChannel("oai-events"), track)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer, call_id = await post_offer(url, key, offer_of(pc))
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer, type="answer"))
        async with asyncio.timeout(track.duration_s + slack_s):
            await track.finished.wait()
            await sender.stop()  # RTCP BYE: the input is over
            await events.closed.wait()  # the server's last events came
    finally:
        await pc.close()
    return RtcResult(call_id, track.chunks, events.received)
# --8<-- [end:rtc_client]


def offer_of(pc: RTCPeerConnection) -> str:
    offer = pc.localDescription
    assert offer is not None  # set before it is sent
    return offer.sdp


def describe_stats(stats: dict[str, Any]) -> list[str]:
    """What to look at in a call's stats, in two lines."""
    delay, audio = stats["jitter_buffer"], stats["audio"]
    return [
        f"codec: {stats['codec']}",
        f"jitter buffer: {delay['delay_ms_p50']} ms median,"
        f" {delay['delay_ms_p95']} ms p95 ({delay['frames']} frames);"
        f" audio lost: {audio['lost_s']:.3f} s;"
        f" RTP jitter: {stats['rtp']['jitter_ms']} ms",
    ]


def print_final(received: ReceivedEvent) -> None:
    event = received.event
    if event.get("type") == COMPLETED:
        print(f"  [webrtc] {event['transcript']}", flush=True)
    elif event.get("type") == "error":
        print(f"  error: {event['error']['message']}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch05_protocols.rtc_client",
        description="Stream a WAV file over WebRTC to"
                    " `python -m ch05_protocols rtc`.")
    parser.add_argument("file", type=Path, help="a mono WAV file")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--key", required=True,
                        help="an API key or a client secret")
    args = parser.parse_args(argv)
    try:
        asyncio.run(stream_and_report(args.file, args.url, args.key))
    except SignallingError as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    return 0


async def stream_and_report(path: Path, url: str, key: str) -> RtcResult:
    """Stream, printing each completed transcript as it comes, then
    the call's codec and jitter-buffer delay."""
    result = await stream_file(path, url, key, on_event=print_final)
    stats = await call_stats(url, key, result.call_id)
    print(f"  call {result.call_id}")
    for line in describe_stats(stats):
        print(f"  {line}")
    return result


if __name__ == "__main__":
    sys.exit(main())
