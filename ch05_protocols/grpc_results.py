"""Session events as typed protobuf responses.

Chapter 5, "gRPC bidirectional streaming". Chapter 4's session emits
the same events whatever the wire; here they become
`StreamingRecognizeResponse` messages: results with word times, a
stability for interims and a confidence for finals, speech events when
the client asked for them, and the billed duration on the last message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from google.protobuf.duration_pb2 import Duration

from ch04_streaming.session import (
    SessionEvent,
    SpeechStartedEvent,
    StreamOptions,
    TranscriptEvent,
)
from ch04_streaming.transcript import Hypothesis
from ch05_protocols.speech.v1.speech_pb2 import (
    SPEECH_ACTIVITY_BEGIN,
    SPEECH_ACTIVITY_END,
    SpeechRecognitionAlternative,
    StreamingRecognitionResult,
    StreamingRecognizeResponse,
    WordInfo,
)


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def billed_seconds(received_s: float) -> int:
    """Audio is billed by the started second, as Google bills it."""
    return math.ceil(round(received_s, 6))


def stability(previous: tuple[str, ...], words: tuple[str, ...]) -> float:
    """The share of an interim's words that the last interim held in the
    same places: words that survived a revision tend to stay."""
    if not words:
        return 0.0
    kept = 0
    for before, now in zip(previous, words, strict=False):
        if before != now:
            break
        kept += 1
    return round(kept / len(words), 3)


@dataclass
class ResponseEncoder:
    """One stream's responses; remembers its last interim's words."""

    options: StreamOptions
    _interim: tuple[str, ...] = field(default=(), init=False)

    def encode(self, event: SessionEvent) -> list[StreamingRecognizeResponse]:
        if isinstance(event, SpeechStartedEvent):
            return [StreamingRecognizeResponse(
                speech_event_type=SPEECH_ACTIVITY_BEGIN,
                speech_event_time=duration(event.at_s))]
        if not isinstance(event, TranscriptEvent):
            return []  # utterance ends are not asked for on this wire
        responses = []
        if event.hypothesis.words:
            result = self._result(event)
            responses.append(StreamingRecognizeResponse(results=[result]))
        if event.speech_final and self.options.vad_events:
            responses.append(StreamingRecognizeResponse(
                speech_event_type=SPEECH_ACTIVITY_END,
                speech_event_time=duration(event.end_s)))
        return responses

    def _result(self, event: TranscriptEvent) -> StreamingRecognitionResult:
        hypothesis = event.hypothesis
        texts = tuple(w.text for w in hypothesis.words)
        final = hypothesis.is_final
        result = StreamingRecognitionResult(
            alternatives=[alternative(hypothesis)],
            is_final=final,
            stability=0.0 if final else stability(self._interim, texts),
            result_start_time=duration(event.start_s),
            result_end_time=duration(event.end_s))
        self._interim = () if final else texts
        return result

    def closing(self, received_s: float) -> StreamingRecognizeResponse:
        return StreamingRecognizeResponse(
            total_billed_time=duration(billed_seconds(received_s)))


def alternative(hypothesis: Hypothesis) -> SpeechRecognitionAlternative:
    words = hypothesis.words
    confidence = (sum(w.confidence for w in words) / len(words)
                  if hypothesis.is_final else 0.0)
    return SpeechRecognitionAlternative(
        transcript=hypothesis.transcript,
        confidence=round(confidence, 3),
        words=[WordInfo(word=w.text, start_time=duration(w.start),
                        end_time=duration(w.end), confidence=w.confidence)
               for w in words])
