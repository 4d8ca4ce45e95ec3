"""The AssemblyAI Universal Streaming v3 dialect, at `/v3/ws`.

Chapter 4, "Reference architectures: AssemblyAI". Where Deepgram sends
results, AssemblyAI sends turns: a `Begin`, then `Turn` messages whose
`transcript` holds only finalized words while `words` flags each word
with `word_is_final`, `end_of_turn` when the speaker is done, and a
`Termination` with the session's durations. Times are integer
milliseconds. The official `assemblyai` SDK accepts these messages.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from pydantic import BaseModel

from ch04_streaming.audio import Encoding
from ch04_streaming.dialects.dialect import (
    CloseCodes,
    Closing,
    Control,
    Inbound,
    RequestError,
    StreamDefaults,
    StreamRequest,
    parse_bool,
    parse_int,
    parse_rate,
    read_binary_frame,
)
from ch04_streaming.pacing import PacingRules
from ch04_streaming.session import (
    SessionEvent,
    SessionStats,
    StreamOptions,
    TranscriptEvent,
)
from ch04_streaming.transcript import Word
from ch04_streaming.wire import WireMessage

ENCODINGS = {"pcm_s16le": Encoding.LINEAR16, "pcm_mulaw": Encoding.MULAW}
SESSION_LIMIT_S = 3 * 3600
# Observed: 314.9 s of audio sent in 1.3 s is refused; AssemblyAI keeps
# about 300 s of look-ahead. Documented: chunks of 50 to 1000 ms.
MAX_AHEAD_S = 300.0
CHUNK_MS = (50.0, 1000.0)

CONTROLS = {"Terminate": Control.CLOSE, "ForceEndpoint": Control.FINALIZE,
            "KeepAlive": Control.KEEP_ALIVE,
            "UpdateConfiguration": Control.KEEP_ALIVE}


class Begin(WireMessage):
    type: Literal["Begin"] = "Begin"
    id: str
    expires_at: int


class TurnWord(BaseModel):
    text: str
    start: int  # milliseconds
    end: int
    confidence: float
    word_is_final: bool


class Turn(WireMessage):
    type: Literal["Turn"] = "Turn"
    turn_order: int
    turn_is_formatted: bool
    end_of_turn: bool
    transcript: str
    end_of_turn_confidence: float
    words: list[TurnWord]


class Termination(WireMessage):
    type: Literal["Termination"] = "Termination"
    audio_duration_seconds: int
    session_duration_seconds: int


def turn_word(word: Word, final: bool) -> TurnWord:
    return TurnWord(text=word.text, start=round(word.start * 1000),
                    end=round(word.end * 1000), confidence=word.confidence,
                    word_is_final=final)


def formatted(text: str) -> str:
    return text[:1].upper() + text[1:] + "." if text else text


@dataclass
class AssemblyAIStream:
    request: StreamRequest
    format_turns: bool
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.time)
    turn_order: int = 0

    def opening(self) -> list[WireMessage]:
        return [Begin(id=self.session_id,
                      expires_at=int(self.started) + SESSION_LIMIT_S)]

    def on_audio(self, payload: bytes) -> None:
        pass

    # --8<-- [start:assemblyai_turn]
    def encode(self, event: SessionEvent) -> list[WireMessage]:
        if not isinstance(event, TranscriptEvent):
            return []
        words = event.hypothesis.words
        end = event.hypothesis.is_final
        # Until the turn ends, the last word may still change.
        stable = len(words) if end else max(len(words) - 1, 0)
        transcript = " ".join(w.text for w in words[:stable])
        turn = Turn(
            turn_order=self.turn_order,
            turn_is_formatted=False,
            end_of_turn=end,
            transcript=transcript,
            end_of_turn_confidence=1.0 if end else 0.0,
            words=[turn_word(w, i < stable) for i, w in enumerate(words)],
        )
        messages: list[WireMessage] = [turn]
        if end:
            if self.format_turns:
                messages.append(turn.model_copy(update={
                    "turn_is_formatted": True,
                    "transcript": formatted(transcript)}))
            self.turn_order += 1
        return messages
    # --8<-- [end:assemblyai_turn]

    def closing(self, stats: SessionStats) -> list[WireMessage]:
        return [Termination(
            audio_duration_seconds=round(stats.received_s),
            session_duration_seconds=round(time.time() - self.started),
        )]


class AssemblyAI:
    name = "assemblyai"
    label = "AssemblyAI"
    path = "/v3/ws"
    codes = CloseCodes(
        bad_audio=Closing(3007, "invalid audio"),
        bad_control=Closing(3006, "invalid message"),
        idle=Closing(1000, "inactivity timeout"),
        slow_consumer=Closing(1008, "slow consumer"),
        pacing=Closing(3007, ""),  # the reason is AssemblyAI's words
        expired=Closing(3008, "Session Expired: Maximum session duration"
                        " exceeded"),
    )
    controls: Mapping[str, Control] = CONTROLS

    def __init__(self, max_ahead_s: float = MAX_AHEAD_S,
                 chunk_ms: tuple[float, float] | None = CHUNK_MS) -> None:
        self.pacing = PacingRules(max_ahead_s, chunk_ms)

    def credential(self, headers: Mapping[str, str],
                   query: Mapping[str, str]) -> str | None:
        """`Authorization: KEY`, or `?token=KEY` where headers can't go."""
        return headers.get("Authorization") or query.get("token")

    def error_headers(self, reason: str) -> dict[str, str]:
        return {}  # the JSON body says it all

    def parse(self, query: Mapping[str, str],
              defaults: StreamDefaults) -> StreamRequest:
        name = query.get("encoding", "pcm_s16le")
        if name not in ENCODINGS:
            raise RequestError(
                f"encoding {name!r} is not supported;"
                " use pcm_s16le or pcm_mulaw"
            )
        silence = parse_int(query, "min_turn_silence", None, 10, 10_000)
        silence = silence or parse_int(
            query, "min_end_of_turn_silence_when_confident",
            defaults.vad.endpointing_ms, 10, 10_000)
        idle = parse_int(query, "inactivity_timeout", None, 5, 3600)
        return StreamRequest(
            encoding=ENCODINGS[name],
            sample_rate=parse_rate(query, 16_000),
            options=StreamOptions(interim_results=True),
            vad=replace(defaults.vad,
                        endpointing_ms=silence or defaults.vad.endpointing_ms),
            idle_timeout_s=float(idle or defaults.idle_timeout_s),
            format_turns=parse_bool(query, "format_turns", False),
        )

    def read_frame(self, frame: str | bytes) -> Inbound:
        return read_binary_frame(frame, self.controls, self.codes)

    def open_stream(self, request: StreamRequest) -> AssemblyAIStream:
        return AssemblyAIStream(request, request.format_turns)
