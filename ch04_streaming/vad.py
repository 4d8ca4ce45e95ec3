"""The VAD gate: only speech reaches inference.

Chapter 4, "Voice Activity Detection". webrtcvad classifies each 10, 20
or 30 ms frame as speech or not; the gate turns that into utterances. A
ring buffer of recent frames is replayed when speech starts, so the first
word is never clipped; the endpointer (`endpointing.py`) ends an
utterance after trailing silence or at its maximum length. Everything
outside an utterance is never sent to the model: that is the saving.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import webrtcvad

from ch04_streaming.audio import MODEL_RATE, Framer, to_pcm16
from ch04_streaming.endpointing import Endpointer


class SpeechClassifier(Protocol):
    def classify(self, frames: np.ndarray) -> list[bool]:
        """Speech or not, for each row of a (frames, samples) array."""


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = 2  # 0 (lenient) to 3 (strict)
    frame_ms: int = 20
    start_ms: int = 40  # this much speech in a row opens an utterance
    pre_roll_ms: int = 300
    endpointing_ms: int = 300
    max_utterance_ms: int = 15_000


@dataclass(frozen=True)
class SpeechStarted:
    at_s: float  # stream time of the first replayed pre-roll sample
    onset_s: float  # stream time of the first frame of speech


@dataclass(frozen=True)
class SpeechAudio:
    samples: np.ndarray  # float32, 16 kHz, part of the open utterance


@dataclass(frozen=True)
class SpeechEnded:
    at_s: float
    reason: str  # "silence", "max_length" or "flush"


VadEvent = SpeechStarted | SpeechAudio | SpeechEnded


@dataclass
class VadGate:
    """Frames in; speech start, speech audio and speech end out."""

    config: VadConfig
    classifier: SpeechClassifier
    framer: Framer
    endpointer: Endpointer
    in_speech: bool = False
    frames_seen: int = 0
    frames_passed: int = 0  # frames that reached inference
    _recent: deque[tuple[np.ndarray, bool]] = field(init=False)

    def __post_init__(self) -> None:
        size = self.config.pre_roll_ms // self.config.frame_ms
        self._recent = deque(maxlen=max(size, 1))

    # --8<-- [start:vad_gate]
    def push(self, samples: np.ndarray) -> list[VadEvent]:
        """Classify each frame; open, feed and close utterances."""
        events: list[VadEvent] = []
        frames = self.framer.frames(samples)
        decisions = self.classifier.classify(frames)
        if (steady := self._steady(frames, decisions)) is not None:
            return steady  # most chunks: no decision inside them
        audio: list[np.ndarray] = []  # open utterance's, from this push
        for frame, speech in zip(frames, decisions, strict=True):
            self.frames_seen += 1
            if not self.in_speech:
                self._recent.append((frame, speech))  # the pre-roll ring
                if self._speech_run() >= self.config.start_ms:
                    audio = self._start(events)
                continue
            audio.append(frame)
            reason = self.endpointer.update(speech, self.config.frame_ms)
            if reason is not None:
                self._pass(audio, events)
                audio = []
                self.in_speech = False
                events.append(SpeechEnded(self.now_s, reason))
        if audio:  # the utterance goes on: one piece for this push
            self._pass(audio, events)
        return events
    # --8<-- [end:vad_gate]

    def _steady(self, frames: np.ndarray, decisions: list[bool]
                ) -> list[VadEvent] | None:
        """Silence outside an utterance, or speech that cannot end the
        open one, handled without a step per frame; None otherwise."""
        count = len(decisions)
        if not self.in_speech and not any(decisions):
            self._recent.extend(zip(frames, decisions, strict=True))
            self.frames_seen += count
            return []
        run_ms = count * self.config.frame_ms
        if (self.in_speech and count and all(decisions)
                and self.endpointer.speech_run(run_ms)):
            self.frames_seen += count
            self.frames_passed += count
            return [SpeechAudio(frames.reshape(-1))]
        return None

    @property
    def frame_s(self) -> float:
        return self.config.frame_ms / 1000

    def _speech_run(self) -> int:
        run = 0
        for _, speech in reversed(self._recent):
            if not speech:
                break
            run += self.config.frame_ms
        return run

    def _start(self, events: list[VadEvent]) -> list[np.ndarray]:
        """Open an utterance; return the ring buffer's frames to replay:
        the onset of the first word sits there."""
        self.in_speech = True
        replay = [frame for frame, _ in self._recent]
        start = (self.frames_seen - len(replay)) * self.frame_s
        onset = self.now_s - self._speech_run() / 1000
        events.append(SpeechStarted(round(start, 6), round(onset, 6)))
        for _, speech in self._recent:
            self.endpointer.update(speech, self.config.frame_ms)
        self._recent.clear()
        return replay

    def _pass(self, frames: list[np.ndarray], events: list[VadEvent]
              ) -> None:
        """Frames of an open utterance go on to inference."""
        events.append(SpeechAudio(np.concatenate(frames)))
        self.frames_passed += len(frames)

    @property
    def now_s(self) -> float:
        return round(self.frames_seen * self.frame_s, 6)

    def flush(self) -> list[VadEvent]:
        """End an open utterance now (client asked to finalize)."""
        if not self.in_speech:
            return []
        self.in_speech = False
        self.endpointer = Endpointer(
            self.endpointer.silence_ms, self.endpointer.max_utterance_ms
        )
        return [SpeechEnded(self.now_s, "flush")]

    @property
    def share_passed(self) -> float:
        """Fraction of the audio that reached inference."""
        return self.frames_passed / self.frames_seen if self.frames_seen else 0


@dataclass
class GuardedWebrtcVad:
    """webrtcvad, guarded against what it mistakes for speech.

    webrtcvad calls its first frames speech while it adapts, and calls
    steady broadband noise speech at every aggressiveness; a level floor
    and a spectral-flatness ceiling (speech has peaks, hiss is flat)
    reject both.
    """

    aggressiveness: int = 2
    min_dbfs: float = -50.0
    max_flatness: float = 0.45
    _vad: webrtcvad.Vad = field(init=False)
    _min_energy: float = field(init=False)

    def __post_init__(self) -> None:
        self._vad = webrtcvad.Vad(self.aggressiveness)
        self._min_energy = 10 ** (self.min_dbfs / 10)  # mean square

    def classify(self, frames: np.ndarray) -> list[bool]:
        if not len(frames):
            return []
        # The cheapest test first: most chunks outside speech stop here.
        energy = np.einsum("ij,ij->i", frames, frames)
        loud = energy >= self._min_energy * frames.shape[1]
        if not loud.any():
            return [False] * len(frames)
        flat = spectral_flatness(frames) > self.max_flatness
        candidates: list[bool] = (loud & ~flat).tolist()
        if not any(candidates):
            return candidates
        pcm = to_pcm16(frames)
        size = 2 * frames.shape[1]
        return [
            ok and self._vad.is_speech(pcm[i * size : (i + 1) * size],
                                       MODEL_RATE)
            for i, ok in enumerate(candidates)
        ]


def spectral_flatness(frames: np.ndarray) -> np.ndarray:
    """Geometric over arithmetic mean of each row's power spectrum:
    near 1 for white noise, far lower for speech. All rows in one FFT
    call, not one call per frame."""
    spectrum = np.square(np.abs(np.fft.rfft(frames, axis=1))) + 1e-12
    bins = spectrum.shape[1]
    geometric = np.exp(np.add.reduce(np.log(spectrum), axis=1) / bins)
    flatness: np.ndarray = geometric / (
        np.add.reduce(spectrum, axis=1) / bins)
    return flatness


def build_vad_gate(config: VadConfig) -> VadGate:
    return VadGate(
        config=config,
        classifier=GuardedWebrtcVad(config.aggressiveness),
        framer=Framer(config.frame_ms),
        endpointer=Endpointer(config.endpointing_ms,
                              config.max_utterance_ms),
    )
