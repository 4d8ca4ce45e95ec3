"""Multichannel streams: one session per channel, one stream outside.

Chapter 4, "Audio fundamentals for serving engineers". A call recorded
in stereo carries each party on a channel of its own, the two
interleaved sample frame by sample frame. Asked to (Deepgram's
`multichannel=true`), the service transcribes each channel on its own:
`ChannelSessions` splits every frame into its channels and feeds one
`StreamSession` per channel, each with its own decoder state, VAD gate
and utterances, all decoding on the shared scheduler, and tags their
events with their channel. To the connection it is one `Session`: one
pending-audio cap for the stream, which bounds the channel furthest
behind, and stats that count the stream's duration once and every
channel's decoding. Without `multichannel`, a stream's channels are
mixed down and decoded once (`AudioDecoder`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from ch04_streaming.audio import InterleavedFormat
from ch04_streaming.backpressure import PendingAudioCap
from ch04_streaming.session import (
    ArrivalLog,
    Emit,
    SessionEvent,
    SessionStats,
    StreamSession,
)
from ch04_streaming.stream_hooks import DeviceTime, ignore_device_time

# Each channel costs what a stream costs (its VAD, its decodes), yet
# admission counts the connection once, against `max_streams` and a
# key's share: the cap bounds what one admitted stream may cost. Two
# serve what multichannel is for, a call's two parties on the two sides
# of a stereo recording. (Deepgram takes up to 20.)
MAX_CHANNELS = 2

# Builds the session of one channel, given where its events go and its
# share of the stream's cap.
ChannelFactory = Callable[[Emit, PendingAudioCap], StreamSession]


@dataclass
class ChannelCap(PendingAudioCap):
    """One channel's undecoded audio; each update is passed on to its
    stream, whose cap holds the most any channel has undecoded."""

    on_update: Callable[[], None] = lambda: None

    def update(self, pending_s: float) -> None:
        super().update(pending_s)
        self.on_update()


@dataclass(eq=False)
class ChannelSessions:
    """A stream of interleaved channels, each transcribed on its own."""

    audio: InterleavedFormat
    emit: Emit
    cap: PendingAudioCap  # the stream's: its policy, its one ceiling
    new_channel: ChannelFactory
    device_time: DeviceTime = ignore_device_time
    channels: list[StreamSession] = field(init=False)

    def __post_init__(self) -> None:
        self.channels = [
            self.new_channel(partial(self._tagged, index),
                             ChannelCap(self.cap.max_s,
                                        on_update=self._cap_changed))
            for index in range(self.audio.channels)]
        for session in self.channels:
            session.device_time = self._device_time
        self.cap.attach(self)

    # --8<-- [start:multichannel_split]
    def accept_audio(self, payload: bytes) -> float:
        """De-interleave one frame: channel i's bytes go to session i,
        which decodes them with its own decoder state. Returns the
        frame's duration, once, not once a channel."""
        seconds = self.audio.duration_of(payload)  # whole sample frames
        frames = np.frombuffer(payload, dtype=np.uint8).reshape(
            -1, self.audio.channels, self.audio.sample_bytes)
        for index, session in enumerate(self.channels):
            # frames[:, index]: every sample frame's sample of `index`
            session.accept_audio(frames[:, index].tobytes())
        return seconds

    def _tagged(self, channel: int, event: SessionEvent) -> None:
        self.emit(replace(event, channel=channel))
    # --8<-- [end:multichannel_split]

    def _device_time(self, device_s: float) -> None:
        self.device_time(device_s)  # the stream's, set once admitted

    def _cap_changed(self) -> None:
        self.cap.update(max(s.cap.pending_s for s in self.channels))

    def drop_oldest(self, seconds: float) -> float:
        """The drop-stale policy: the channel furthest behind drops up
        to `seconds` of its oldest undecoded speech, and any other what
        it holds beyond that; returns the most any channel dropped."""
        keep = self.cap.pending_s - seconds
        return max(s.drop_oldest(max(s.cap.pending_s - keep, 0.0))
                   for s in self.channels)

    def finalize(self) -> None:
        for session in self.channels:
            session.finalize()

    async def drained(self) -> None:
        await asyncio.gather(*(s.drained() for s in self.channels))

    async def run(self) -> None:
        """Every channel's decode loop; the first to fail stops all, and
        its error is the stream's."""
        try:
            async with asyncio.TaskGroup() as group:
                for session in self.channels:
                    group.create_task(session.run())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None

    @property
    def channel_arrivals(self) -> Sequence[ArrivalLog]:
        return tuple(s.arrivals for s in self.channels)

    @property
    def stats(self) -> SessionStats:
        """The stream's duration once; what was decoded, skipped and
        dropped in every channel, summed (channel-seconds)."""
        each = [s.stats for s in self.channels]
        return SessionStats(
            received_s=each[0].received_s,
            decoded_s=sum(s.decoded_s for s in each),
            decode_calls=sum(s.decode_calls for s in each),
            interims_skipped=sum(s.interims_skipped for s in each),
            finals=sum(s.finals for s in each),
            dropped_s=sum(s.dropped_s for s in each),
            device_s=sum(s.device_s for s in each),
        )
