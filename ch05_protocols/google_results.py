"""Chapter 4's session events as Google's `StreamingRecognizeResponse`s.

Chapter 5, "gRPC bidirectional streaming: protobuf for audio chunks,
deadline propagation, Google's approach". The session core is the one of
chapter 4; only the words on the wire change. Google marks a result
final with `is_final`, says how settled an interim is with `stability`,
gives times as protobuf `Duration`s from the start of the audio, and
reports speech activity and the end of a single utterance as
`speech_event_type`. The stream's last response carries
`total_billed_time`, the audio the stream is billed for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from google.cloud.speech_v1.types import (
    SpeechRecognitionAlternative,
    StreamingRecognitionResult,
    StreamingRecognizeResponse,
    WordInfo,
)

from ch04_streaming.session import (
    SessionEvent,
    SessionStats,
    SpeechStartedEvent,
    TranscriptEvent,
)
from ch04_streaming.transcript import Word
from ch05_protocols.google_config import GoogleStreamConfig

SpeechEventType = StreamingRecognizeResponse.SpeechEventType
# Google's two levels: the settled part of an interim, then its tail.
SETTLED, UNSETTLED = 0.9, 0.01


def offset(seconds: float) -> timedelta:
    """Stream time as the `Duration` protobuf takes it."""
    return timedelta(seconds=round(seconds, 3))


def alternative(text: str, words: tuple[Word, ...] = (),
                confidence: float = 0.0) -> SpeechRecognitionAlternative:
    return SpeechRecognitionAlternative(
        transcript=text,
        confidence=confidence,
        words=[WordInfo(word=w.text, start_time=offset(w.start),
                        end_time=offset(w.end)) for w in words],
    )


# --8<-- [start:google_results]
def recognition_results(event: TranscriptEvent, config: GoogleStreamConfig
                        ) -> list[StreamingRecognitionResult]:
    """A hypothesis with words as Google's results: a final as one, an
    interim with its settled words first, then the last word, which may
    still change."""
    words = event.hypothesis.words
    end = offset(event.end_s)
    language = config.language_code
    if event.hypothesis.is_final:
        confidence = sum(w.confidence for w in words) / len(words)
        timed = words if config.word_time_offsets else ()
        return [StreamingRecognitionResult(
            alternatives=[alternative(event.hypothesis.transcript, timed,
                                      round(confidence, 3))],
            is_final=True, result_end_time=end, language_code=language)]
    *settled, last = words
    parts = [(" ".join(w.text for w in settled), SETTLED)] if settled else []
    # The tail's leading space lets a client join the parts as they are.
    tail = f" {last.text}" if settled else last.text
    parts.append((tail, UNSETTLED))
    return [StreamingRecognitionResult(
        alternatives=[alternative(text)], stability=stability,
        result_end_time=end, language_code=language)
        for text, stability in parts]
# --8<-- [end:google_results]


@dataclass
class GoogleResponses:
    """One stream's responses: the events it asked for, in its terms."""

    config: GoogleStreamConfig
    request_id: int  # Google's id of the stream, on every response

    def response(self, **fields: object) -> StreamingRecognizeResponse:
        return StreamingRecognizeResponse(request_id=self.request_id,
                                          **fields)

    def encode(self, event: SessionEvent) -> list[StreamingRecognizeResponse]:
        if isinstance(event, SpeechStartedEvent):
            return [self.activity(SpeechEventType.SPEECH_ACTIVITY_BEGIN,
                                  event.at_s)]
        if not isinstance(event, TranscriptEvent):
            return []  # utterance ends: Google has no such message
        responses = []
        if event.speech_final and self.config.voice_activity_events:
            responses.append(self.activity(
                SpeechEventType.SPEECH_ACTIVITY_END, event.end_s))
        if event.hypothesis.words:  # Google sends no empty results
            responses.append(self.response(
                results=recognition_results(event, self.config)))
        return responses

    def activity(self, kind: int, at_s: float
                 ) -> StreamingRecognizeResponse:
        return self.response(speech_event_type=kind,
                             speech_event_time=offset(at_s))

    def end_of_single_utterance(self) -> StreamingRecognizeResponse:
        return self.response(
            speech_event_type=SpeechEventType.END_OF_SINGLE_UTTERANCE)

    def closing(self, stats: SessionStats) -> StreamingRecognizeResponse:
        """The last response: the audio received, in whole seconds,
        rounded up."""
        billed = math.ceil(round(stats.received_s, 3))
        return self.response(total_billed_time=timedelta(seconds=billed))
