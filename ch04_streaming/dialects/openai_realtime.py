"""The OpenAI Realtime transcription dialect, at `/v1/realtime`.

Chapter 5, "WebSocket for audio" and "WebRTC", on chapter 4's session
core. OpenAI's realtime API streams audio as base64 inside JSON events
(`input_audio_buffer.append`, PCM16 at 24 kHz), the text framing chapter
5 measures against binary frames, and answers with events: the server
VAD's `speech_started` and `speech_stopped`, the buffer `committed` as
an item, transcription `delta`s, and a `completed` transcript with the
audio seconds it used. Unlike the other dialects, a bad event does not
end the stream: it is answered with an `error` event and the session
goes on, so this dialect's stream answers client events itself
(`AnsweringStream`). With `audio_frames`, binary frames are the audio
(WebRTC's track and WebTransport carry it beside the events).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from ch04_streaming.audio import Encoding
from ch04_streaming.auth import authorization_key
from ch04_streaming.dialects.dialect import (
    Answer,
    ClientEvent,
    CloseCodes,
    Closing,
    Control,
    Inbound,
    RequestError,
    StreamDefaults,
    StreamRequest,
)
from ch04_streaming.dialects.openai_events import (
    RATE,
    Append,
    Clear,
    Cleared,
    Commit,
    Committed,
    DurationUsage,
    ErrorEvent,
    InvalidEvent,
    PcmFormat,
    ServerVad,
    SessionAudio,
    SessionCreated,
    SessionInput,
    SessionUpdate,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    Transcription,
    TranscriptionCompleted,
    TranscriptionDelta,
    TranscriptionSession,
    TurnDetection,
    invalid_request,
    new_id,
    read_event,
)
from ch04_streaming.pacing import PacingRules
from ch04_streaming.session import (
    SessionEvent,
    SessionStats,
    SpeechStartedEvent,
    StreamOptions,
    TranscriptEvent,
)
from ch04_streaming.wire import WireMessage

MIN_COMMIT_S = 0.1  # OpenAI refuses to commit less audio than this
SESSION_LIMIT_S = 60 * 60  # OpenAI's longest realtime session
# A browser cannot set headers on a WebSocket: OpenAI's own page
# sends the key as a subprotocol beside `realtime`.
KEY_SUBPROTOCOL = "openai-insecure-api-key."
BINARY_REFUSED = invalid_request(
    "invalid_value", "Binary frames are not events: send audio as"
    " input_audio_buffer.append with base64 PCM.")


@dataclass
class Item:
    """One utterance as OpenAI names it: an input audio item."""

    item_id: str = field(default_factory=lambda: new_id("item"))
    start_s: float | None = None  # the utterance's, once results come
    sent: str = ""  # what deltas have sent so far
    cleared: bool = False  # the client cleared it: nothing more is sent


def ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass
class RealtimeStream:
    request: StreamRequest
    transcription: Transcription
    session_id: str = field(default_factory=lambda: new_id("sess"))
    started: float = field(default_factory=time.time)
    _open: deque[Item] = field(default_factory=deque)  # oldest first
    _previous: str | None = None  # the last item committed
    _buffered_s: float = 0.0  # audio since the last commit

    def session(self) -> TranscriptionSession:
        vad = self.request.vad
        return TranscriptionSession(
            id=self.session_id,
            expires_at=int(self.started) + SESSION_LIMIT_S,
            audio=SessionAudio(input=SessionInput(
                format=PcmFormat(type="audio/pcm", rate=RATE),
                transcription=self.transcription,
                turn_detection=TurnDetection(
                    prefix_padding_ms=vad.pre_roll_ms,
                    silence_duration_ms=vad.endpointing_ms))))

    def opening(self) -> list[WireMessage]:
        return [SessionCreated(session=self.session())]

    def on_audio(self, payload: bytes) -> None:
        self._buffered_s += len(payload) / (2 * RATE)

    # --8<-- [start:realtime_events]
    def encode(self, event: SessionEvent) -> list[WireMessage]:
        if isinstance(event, SpeechStartedEvent):
            item = Item()
            self._open.append(item)
            return [SpeechStarted(audio_start_ms=ms(event.at_s),
                                  item_id=item.item_id)]
        if not isinstance(event, TranscriptEvent):
            return []
        item, started = self._item_for(event.start_s)
        text = event.hypothesis.transcript
        # OpenAI's deltas only append: a revised interim waits for
        # the completed transcript, which is the truth.
        delta = text[len(item.sent):] if text.startswith(item.sent) else ""
        item.sent += delta
        final = event.hypothesis.is_final
        if final:
            self._open.remove(item)
            self._buffered_s = 0.0
        if item.cleared:
            return []
        messages = started + (self._commit(item, event.end_s) if final
                              else [])
        if delta:
            messages.append(TranscriptionDelta(item_id=item.item_id,
                                               delta=delta))
        if final:
            messages.append(TranscriptionCompleted(
                item_id=item.item_id, transcript=text, usage=DurationUsage(
                    seconds=round(event.end_s - event.start_s, 3))))
        return messages
    # --8<-- [end:realtime_events]

    def _item_for(self, start_s: float) -> tuple[Item, list[WireMessage]]:
        """The item these results belong to, and any speech_started
        owed: an utterance split at its longest has no VAD onset."""
        for item in self._open:
            if item.start_s == start_s:
                return item, []
        for item in self._open:
            if item.start_s is None:
                item.start_s = start_s
                return item, []
        item = Item(start_s=start_s)
        self._open.append(item)
        return item, [SpeechStarted(audio_start_ms=ms(start_s),
                                    item_id=item.item_id)]

    def _commit(self, item: Item, end_s: float | None
                ) -> list[WireMessage]:
        """The buffer committed as `item`; the VAD's stop, if it was."""
        previous, self._previous = self._previous, item.item_id
        stopped: list[WireMessage] = [] if end_s is None else [
            SpeechStopped(audio_end_ms=ms(end_s), item_id=item.item_id)]
        return [*stopped, Committed(item_id=item.item_id,
                                    previous_item_id=previous)]

    # --8<-- [start:realtime_answer]
    def answer(self, event: ClientEvent) -> Answer:
        """A client event the stream answers, without ending it."""
        message = event.event
        if isinstance(message, SessionUpdate):
            return self._update(message)
        if isinstance(message, Commit):
            if self._open:
                return Answer([], Control.FINALIZE)  # the final commits
            return self._commit_silence(message)
        if isinstance(message, Clear):
            for item in self._open:
                item.cleared = True
            self._buffered_s = 0.0
            return Answer([Cleared()], Control.FINALIZE)
        if isinstance(message, InvalidEvent):
            return refused(message)
        raise TypeError(f"not a client event: {message!r}")
    # --8<-- [end:realtime_answer]

    def _commit_silence(self, commit: Commit) -> Answer:
        """A commit with no speech open: what came since the last one
        is an item with nothing said, as OpenAI commits it, if it holds
        the 100 ms OpenAI asks of a buffer."""
        buffered, self._buffered_s = self._buffered_s, 0.0
        if buffered < MIN_COMMIT_S:
            return refused(invalid_request(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small."
                f" Expected at least {ms(MIN_COMMIT_S)}ms of audio, but"
                f" buffer only has {buffered * 1000:.2f}ms of audio.",
                event_id=commit.event_id))
        item = Item()
        return Answer([*self._commit(item, None), TranscriptionCompleted(
            item_id=item.item_id, transcript="",
            usage=DurationUsage(seconds=round(buffered, 3)))])

    def _update(self, update: SessionUpdate) -> Answer:
        """Take what this server can honour; refuse the rest by name."""
        if update.session.type != "transcription":
            return refused(invalid_request(
                "invalid_value", "This server serves transcription"
                " sessions only.", "session.type", update.event_id))
        audio = update.session.audio
        settings = audio.input if audio else None
        if settings and (problem := unsupported(settings.format,
                                                settings.turn_detection)):
            param, message = problem
            return refused(invalid_request("invalid_value", message,
                                           param, update.event_id))
        if settings and settings.transcription:
            self.transcription = settings.transcription
        return Answer([SessionUpdated(session=self.session())])

    def closing(self, stats: SessionStats) -> list[WireMessage]:
        return []


def unsupported(format: PcmFormat | None, turn: ServerVad | None
                ) -> tuple[str, str] | None:
    """Why a session's audio settings cannot be honoured, or None."""
    if format is not None and format.type != "audio/pcm":
        return ("session.audio.input.format.type",
                f"{format.type} is not served here; send audio/pcm.")
    if format is not None and format.rate not in (None, RATE):
        return ("session.audio.input.format.rate",
                f"Invalid value: {format.rate}. Supported values are:"
                f" {RATE}.")
    if turn is not None and turn.type != "server_vad":
        return ("session.audio.input.turn_detection.type",
                "Only server_vad turn detection is served here.")
    return None


def refused(error: InvalidEvent) -> Answer:
    return Answer([ErrorEvent(error=error.error)])


class OpenAIRealtime:
    name = "openai"
    label = "OpenAI Realtime"
    path = "/v1/realtime"
    codes = CloseCodes(
        bad_audio=Closing(1007, "invalid audio"),
        bad_control=Closing(1008, "invalid event"),
        idle=Closing(1000, "idle timeout"),
        slow_consumer=Closing(1008, "slow consumer"),
        pacing=Closing(1008, "pacing"),  # never used: no pacing rules
        expired=Closing(1000, "maximum session duration"),
    )
    controls: Mapping[str, Control] = {}  # every event is answered
    pacing = PacingRules()

    def __init__(self, audio_frames: bool = False,
                 model: str = "gpt-4o-transcribe") -> None:
        self.audio_frames = audio_frames
        self.model = model

    def credential(self, headers: Mapping[str, str],
                   query: Mapping[str, str]) -> str | None:
        """`Authorization: Bearer KEY`, or a browser's subprotocol
        `openai-insecure-api-key.KEY` beside `realtime`."""
        if key := authorization_key(headers.get("Authorization", "")):
            return key
        for offered in headers.get("Sec-WebSocket-Protocol", "").split(","):
            if offered.strip().startswith(KEY_SUBPROTOCOL):
                return offered.strip().removeprefix(KEY_SUBPROTOCOL)
        return None

    def error_headers(self, reason: str) -> dict[str, str]:
        return {}  # the JSON body says it all

    def parse(self, query: Mapping[str, str],
              defaults: StreamDefaults) -> StreamRequest:
        intent = query.get("intent")
        if intent != "transcription":
            raise RequestError(
                "this server serves transcription sessions only:"
                " connect with ?intent=transcription")
        return StreamRequest(
            encoding=Encoding.LINEAR16,
            sample_rate=RATE,
            options=StreamOptions(interim_results=True, vad_events=True),
            vad=defaults.vad,
            idle_timeout_s=defaults.idle_timeout_s,
        )

    def read_frame(self, frame: str | bytes) -> Inbound:
        if isinstance(frame, bytes):
            return frame if self.audio_frames else ClientEvent(
                BINARY_REFUSED)
        event = read_event(frame)
        return event.audio if isinstance(event, Append) else ClientEvent(
            event)

    def open_stream(self, request: StreamRequest) -> RealtimeStream:
        return RealtimeStream(request, Transcription(model=self.model))
