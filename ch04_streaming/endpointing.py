"""Endpointing: deciding that the speaker has finished.

Chapter 4, "Voice Activity Detection". A VAD says, frame by frame,
whether there is speech; endpointing turns that into utterances by
waiting for enough trailing silence, and bounds an utterance's length so
that a speaker who never pauses still gets finals.
"""

from __future__ import annotations

from dataclasses import dataclass, field


# --8<-- [start:endpointing]
@dataclass
class Endpointer:
    """Close an utterance after `silence_ms` of trailing silence."""

    silence_ms: int = 300
    max_utterance_ms: int = 15_000
    _silent_ms: int = field(default=0, init=False)
    _speech_ms: int = field(default=0, init=False)

    def update(self, is_speech: bool, frame_ms: int) -> str | None:
        """Feed one frame of an utterance; say why it ends, if it does."""
        self._speech_ms += frame_ms
        self._silent_ms = 0 if is_speech else self._silent_ms + frame_ms
        # A runaway utterance costs latency for everyone: cut it.
        if self._speech_ms >= self.max_utterance_ms:
            reason: str | None = "max_length"
        elif self._silent_ms >= self.silence_ms:
            reason = "silence"
        else:
            return None
        self._silent_ms = self._speech_ms = 0
        return reason
# --8<-- [end:endpointing]

    def speech_run(self, ms: int) -> bool:
        """Feed `ms` of unbroken speech at once, if it cannot end the
        utterance; False, feeding nothing, if it might."""
        if self._speech_ms + ms >= self.max_utterance_ms:
            return False
        self._speech_ms += ms
        self._silent_ms = 0
        return True
