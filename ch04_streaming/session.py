"""The session core: one stream's path from bytes to transcripts.

Chapter 4, "End-to-end architecture". Each stream owns a `StreamSession`:
its decoder, VAD gate, utterance decoders and pending work live here,
never on the shared server. Audio goes in through `accept_audio`; a
decode loop sends the VAD's speech to the recogniser and emits typed
events that a dialect adapter turns into wire messages. The session
asks a `DecodeScheduler` for inference, never the engine itself. When
inference lags, interim work is coalesced (the skipped interim updates
are counted), while every final is decoded; how much audio may wait
undecoded is the pending-audio cap's to say (`backpressure.py`). When a
stream's policy drops stale audio (chapter 5), the session drops the
oldest undecoded speech and cuts its utterance at the gap, so that the
words after it keep their true times. A connection sees its stream's
session as a `Session`: this one, or one per channel (`channels.py`).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ch04_streaming.audio import MODEL_RATE, AudioDecoder
from ch04_streaming.backpressure import PendingAudioCap
from ch04_streaming.engine import DecodeRequest, UtteranceDecoder
from ch04_streaming.scheduler import DecodeScheduler
from ch04_streaming.stream_hooks import DeviceTime, ignore_device_time
from ch04_streaming.transcript import Hypothesis
from ch04_streaming.vad import (
    SpeechAudio,
    SpeechEnded,
    SpeechStarted,
    VadEvent,
    VadGate,
)


@dataclass(frozen=True)
class StreamOptions:
    """What the client asked for, parsed from the dialect's query."""

    interim_results: bool = True
    utterance_end_ms: int | None = None
    vad_events: bool = False


# Every event names its channel: 0 but in a stream whose channels are
# transcribed one by one (`channels.py`), which tags its sessions' events.
@dataclass(frozen=True)
class SpeechStartedEvent:
    at_s: float  # when speech began (not the replayed pre-roll)
    channel: int = 0


@dataclass(frozen=True)
class TranscriptEvent:
    hypothesis: Hypothesis
    start_s: float  # utterance start, stream time
    end_s: float  # end of the audio this hypothesis covers
    speech_final: bool  # the speaker stopped: an endpoint
    from_finalize: bool  # the client asked for this final
    channel: int = 0


@dataclass(frozen=True)
class UtteranceEndEvent:
    last_word_end: float
    channel: int = 0


SessionEvent = SpeechStartedEvent | TranscriptEvent | UtteranceEndEvent
Emit = Callable[[SessionEvent], None]


class InterimCadence(Protocol):
    """How often a stream's interim results are decoded and shown: a
    server under load (chapter 6) asks for fewer, or none."""

    @property
    def min_interim_s(self) -> float:
        """Undecoded speech an interim decode waits for (0: any)."""

    @property
    def show_interims(self) -> bool: ...


class EveryChunk:
    """Chapter 4's cadence: an interim for whatever audio came."""

    min_interim_s = 0.0
    show_interims = True


@dataclass
class PendingWork:
    """Audio of one utterance waiting for the recogniser."""

    decoder: UtteranceDecoder
    chunks: list[np.ndarray] = field(default_factory=list)
    final: bool = False
    reason: str = ""
    offset: int = 0  # samples of its utterance routed before its chunks

    @property
    def samples(self) -> int:
        return sum(c.size for c in self.chunks)


class ArrivalLog:
    """When the audio up to each point of the stream arrived, so that a
    result can be timed from the arrival of the words it holds. Only
    the last `horizon_s` of stream time is kept: a result's words are
    never older than its utterance, which the VAD caps at half of it
    (15 s), and a stream open for hours costs no more than a short one."""

    def __init__(self, horizon_s: float = 30.0) -> None:
        self._ends: list[float] = []  # stream time at the end of a frame
        self._times: list[float] = []  # and when that frame arrived
        self._horizon_s = horizon_s
        self._trim_at = 256  # entries, grown to twice what is kept

    def record(self, end_s: float, at: float) -> None:
        self._ends.append(end_s)
        self._times.append(at)
        if len(self._ends) >= self._trim_at:  # amortised O(1)
            old = bisect.bisect_left(self._ends, end_s - self._horizon_s)
            del self._ends[:old], self._times[:old]
            self._trim_at = max(256, 2 * len(self._ends))

    def time_of(self, stream_s: float) -> float | None:
        """Arrival of the frame that holds `stream_s`, if still known."""
        i = bisect.bisect_left(self._ends, stream_s - 1e-6)
        return self._times[i] if i < len(self._times) else None


@dataclass
class SessionStats:
    received_s: float = 0.0  # audio from the client, at its rate
    decoded_s: float = 0.0  # audio the recogniser saw
    decode_calls: int = 0
    interims_skipped: int = 0  # coalesced while inference lagged
    finals: int = 0
    dropped_s: float = 0.0  # stale audio dropped (a dropping policy)
    device_s: float = 0.0  # accelerator time of this stream's decodes


@dataclass
class StreamSession:
    options: StreamOptions
    scheduler: DecodeScheduler
    audio: AudioDecoder
    vad: VadGate
    emit: Emit
    cap: PendingAudioCap = field(
        default_factory=lambda: PendingAudioCap(max_s=10.0))
    clock: Callable[[], float] = time.monotonic
    cadence: InterimCadence = field(default_factory=EveryChunk)
    stats: SessionStats = field(default_factory=SessionStats)
    arrivals: ArrivalLog = field(default_factory=ArrivalLog)
    # Told each decode's device time: the stream's tracker (a handler
    # sets it once admitted), so chapter 8 can meter compute time.
    device_time: DeviceTime = ignore_device_time
    _queue: deque[PendingWork] = field(default_factory=deque, init=False)
    _current: UtteranceDecoder | None = field(default=None, init=False)
    _routed: int = field(default=0, init=False)  # samples of _current
    _work: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _idle: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _last_word_end: float | None = field(default=None, init=False)
    _onsets: deque[float] = field(
        default_factory=lambda: deque(maxlen=64), init=False
    )

    def __post_init__(self) -> None:
        self._idle.set()
        self.cap.attach(self)

    @property
    def channel_arrivals(self) -> Sequence[ArrivalLog]:
        """Arrival logs by channel: this session's is channel 0's."""
        return (self.arrivals,)

    # --8<-- [start:session_accept]
    def accept_audio(self, payload: bytes) -> float:
        """Decode one frame and route the VAD's events; never blocks.

        Returns the frame's duration in seconds.
        """
        samples = self.audio.decode(payload)  # AudioFormatError if bad
        seconds = self.audio.received_s - self.stats.received_s
        self.stats.received_s = self.audio.received_s
        self._route(self.vad.push(samples))
        self.arrivals.record(self.vad.now_s, self.clock())
        self._check_utterance_end()
        return seconds
    # --8<-- [end:session_accept]

    # --8<-- [start:vad_routing]
    def _route(self, events: list[VadEvent]) -> None:
        for event in events:
            if isinstance(event, SpeechStarted):
                self._current = self.scheduler.new_utterance(event.at_s)
                self._routed = 0
                self._onsets.append(event.onset_s)
                if self.options.vad_events:
                    self.emit(SpeechStartedEvent(event.onset_s))
            elif isinstance(event, SpeechAudio) and self._current is not None:
                self._pending_for(self._current).chunks.append(event.samples)
                self._routed += event.samples.size
            elif isinstance(event, SpeechEnded) and self._current is not None:
                work = self._pending_for(self._current)
                work.final, work.reason = True, event.reason
                self._current = None
        self._update_flow()
    # --8<-- [end:vad_routing]

    def finalize(self) -> None:
        """Client asked for a final now (Finalize, ForceEndpoint)."""
        tail = self.audio.flush()
        events = self.vad.push(tail) if tail.size else []
        self._route([*events, *self.vad.flush()])

    def _pending_for(self, decoder: UtteranceDecoder) -> PendingWork:
        last = self._queue[-1] if self._queue else None
        if last is None or last.decoder is not decoder or last.final:
            last = PendingWork(decoder, offset=self._routed)
            self._queue.append(last)
        return last

    def drop_oldest(self, seconds: float) -> float:
        """Drop up to `seconds` of the oldest undecoded speech (the
        drop-stale policy); return the seconds dropped."""
        wanted = round(seconds * MODEL_RATE)
        dropped = 0
        for work in list(self._queue):  # oldest first
            if dropped >= wanted:
                break
            if not work.chunks:
                continue
            audio = np.concatenate(work.chunks)
            cut = min(audio.size, wanted - dropped)
            work.chunks = [audio[cut:]] if cut < audio.size else []
            dropped += cut
            self._cut_at_gap(work, cut)
        self.stats.dropped_s += dropped / MODEL_RATE
        self._update_flow()
        return dropped / MODEL_RATE

    def _cut_at_gap(self, work: PendingWork, cut: int) -> None:
        """`work` lost its first `cut` samples. What its utterance heard
        before the gap is finalized; what follows goes on as a new
        utterance that starts after the gap, so its words keep their
        times (a decoder dates words by the audio it was fed)."""
        old = work.decoder
        if work.final and not work.chunks:
            return  # nothing after the gap: the final closes `old`
        if work.offset == 0:  # `old` has heard nothing yet: start later
            old.start_s += cut / MODEL_RATE
            if self._current is old:
                self._routed -= cut
            return
        # `old` heard what came before: it ends there. (By identity:
        # equal-looking work would compare its audio arrays.)
        index = next(i for i, w in enumerate(self._queue) if w is work)
        self._queue.insert(index, PendingWork(old, final=True,
                                              reason="gap"))
        resumed_s = old.start_s + (work.offset + cut) / MODEL_RATE
        work.decoder = self.scheduler.new_utterance(resumed_s)
        work.offset = 0
        if self._current is old:
            self._current = work.decoder
            self._routed = work.samples

    def _update_flow(self) -> None:
        self.cap.update(sum(w.samples for w in self._queue) / MODEL_RATE)
        if self._ready_work() is not None:
            self._idle.clear()
            self._work.set()

    def _ready_work(self) -> PendingWork | None:
        if not self._queue:
            return None
        head = self._queue[0]
        if head.final:
            return head
        # Decode as audio comes even without interims: the decoder state
        # must advance, or undecoded audio would pile up until the final.
        enough = max(1, round(self.cadence.min_interim_s * MODEL_RATE))
        return head if head.chunks and head.samples >= enough else None

    async def drained(self) -> None:
        """Wait until every final so far has been decoded and emitted."""
        while self._ready_work() is not None or not self._idle.is_set():
            await self._idle.wait()
            if self._ready_work() is not None:
                self._idle.clear()
                self._work.set()

    # --8<-- [start:decode_loop]
    async def run(self) -> None:
        """Decode pending speech until cancelled: one request at a time."""
        while True:
            await self._work.wait()
            work = self._ready_work()
            if work is None:
                self._work.clear()
                self._idle.set()
                continue
            self._queue.popleft()
            # Chunks that queued up while the engine was busy get one
            # interim between them, not one each: stale interims are
            # skipped, the audio itself is never dropped.
            self.stats.interims_skipped += max(len(work.chunks) - 1, 0)
            audio = (np.concatenate(work.chunks) if work.chunks
                     else np.zeros(0, dtype=np.float32))
            request = DecodeRequest(work.decoder, audio, work.final)
            hypothesis = await self.scheduler.decode(request)
            self._account(work, audio, hypothesis)
            self._update_flow()
    # --8<-- [end:decode_loop]

    def _account(
        self, work: PendingWork, audio: np.ndarray, hypothesis: Hypothesis
    ) -> None:
        self.stats.decode_calls += 1
        self.stats.decoded_s += audio.size / MODEL_RATE
        self.stats.device_s += hypothesis.device_s
        self.device_time(hypothesis.device_s)
        decoder = work.decoder
        if work.final:
            self.stats.finals += 1
            if hypothesis.words:
                self._last_word_end = hypothesis.words[-1].end
        shown = self.options.interim_results and self.cadence.show_interims
        if not (work.final or shown):
            return
        self.emit(TranscriptEvent(
            hypothesis=hypothesis,
            start_s=decoder.start_s,
            end_s=round(decoder.end_s, 3),
            speech_final=work.final and work.reason != "flush",
            from_finalize=work.reason == "flush",
        ))
        self._check_utterance_end()

    def _check_utterance_end(self) -> None:
        """UtteranceEnd: no word for `utterance_end_ms` after the last.

        Judged in audio time, not wall time: a client that sends faster
        than real time gets the same events as one that does not.
        """
        gap_ms = self.options.utterance_end_ms
        last = self._last_word_end
        if gap_ms is None or last is None:
            return
        later = [t for t in self._onsets if t > last]
        if later:
            silence = later[0] - last  # speech came back: the gap is known
        elif self.vad.in_speech:
            return
        else:
            silence = self.vad.now_s - last
        if silence >= gap_ms / 1000:
            self._last_word_end = None
            self.emit(UtteranceEndEvent(last))
        elif later:
            self._last_word_end = None


class FrameMeasure(Protocol):
    def duration_of(self, payload: bytes) -> float:
        """Seconds of audio a frame holds, known before decoding it."""


class Session(Protocol):
    """What a connection needs of its stream's session: a
    `StreamSession`, or one per channel behind `ChannelSessions`."""

    device_time: DeviceTime

    @property
    def audio(self) -> FrameMeasure: ...

    @property
    def cap(self) -> PendingAudioCap: ...

    @property
    def stats(self) -> SessionStats: ...

    @property
    def channel_arrivals(self) -> Sequence[ArrivalLog]:
        """When each channel's audio arrived, by channel index."""

    def accept_audio(self, payload: bytes) -> float: ...

    def finalize(self) -> None: ...

    async def drained(self) -> None: ...

    async def run(self) -> None: ...
