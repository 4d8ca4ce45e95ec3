"""The VAD gate on the sample audio: utterances found, silence skipped."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from ch04_streaming.audio import Framer
from ch04_streaming.endpointing import Endpointer
from ch04_streaming.vad import (
    SpeechAudio,
    SpeechEnded,
    SpeechStarted,
    VadConfig,
    VadEvent,
    VadGate,
    build_vad_gate,
)
from examples.fixtures import AudioFixture, load_manifest
from tests.audio_checks import load_mono

MANIFEST = load_manifest()


def test_endpoint_waits_for_trailing_silence() -> None:
    ep = Endpointer(silence_ms=300)
    frames = [True] * 10 + [False] * 9
    assert not any(ep.update(f, 30) for f in frames)  # 270 ms silent
    assert ep.update(False, 30) == "silence"  # 300 ms: done


def test_runaway_utterance_is_cut() -> None:
    ep = Endpointer(silence_ms=300, max_utterance_ms=600)
    assert [ep.update(True, 20) for _ in range(30)][-1] == "max_length"


@dataclass
class Segment:
    start: float
    end: float
    reason: str
    samples: int


def segments(events: list[VadEvent]) -> list[Segment]:
    found: list[Segment] = []
    for event in events:
        if isinstance(event, SpeechStarted):
            assert event.onset_s - event.at_s <= 0.3  # the pre-roll
            found.append(Segment(event.at_s, -1.0, "", 0))
        elif isinstance(event, SpeechAudio):
            found[-1].samples += event.samples.size
        elif isinstance(event, SpeechEnded):
            found[-1].end, found[-1].reason = event.at_s, event.reason
    return found


def run_gate(fixture: AudioFixture, config: VadConfig) -> tuple[
    VadGate, list[Segment]
]:
    gate = build_vad_gate(config)
    audio = load_mono(fixture, fixture.file().parent.parent.parent)
    events: list[VadEvent] = []
    for i in range(0, audio.size, 1600):  # 100 ms chunks
        events += gate.push(audio[i : i + 1600].astype(np.float32))
    return gate, segments(events)


@pytest.mark.parametrize(
    "fixture",
    [f for f in MANIFEST.fixtures if f.kind == "utterance"],
    ids=lambda f: f.id,
)
def test_single_utterance_is_one_segment_with_pre_roll(
    fixture: AudioFixture,
) -> None:
    _, found = run_gate(fixture, VadConfig(pre_roll_ms=300))
    assert len(found) == 1
    (segment,) = found
    first, last = fixture.words[0], fixture.words[-1]
    # The first word is never clipped: the segment opens before it.
    assert segment.start <= first.start - 0.1
    assert last.end < segment.end <= last.end + 0.6
    assert segment.reason == "silence"
    assert segment.samples == round((segment.end - segment.start) * 16_000)


@pytest.mark.parametrize("fixture_id", ["silence", "noise"])
def test_no_speech_reaches_inference(fixture_id: str) -> None:
    gate, found = run_gate(MANIFEST.get(fixture_id), VadConfig())
    assert found == []
    assert gate.share_passed == 0


def test_conversation_pauses_split_utterances() -> None:
    fixture = MANIFEST.get("support_call")
    gate, found = run_gate(fixture, VadConfig(endpointing_ms=300))
    # Every word lies inside a segment; pauses of >= 0.45 s split.
    for word in fixture.words:
        assert any(s.start <= word.start and word.end <= s.end
                   for s in found), word
    long_pauses = sum(
        1 for a, b in zip(fixture.utterances, fixture.utterances[1:],
                          strict=False)
        if b.start - a.end >= 0.45
    )
    assert len(found) >= long_pauses + 1
    assert 0.5 < gate.share_passed < 0.95


def test_max_utterance_length_forces_an_end() -> None:
    fixture = MANIFEST.get("support_call")
    _, found = run_gate(fixture, VadConfig(endpointing_ms=2500,
                                           max_utterance_ms=5000))
    assert any(s.reason == "max_length" for s in found)
    assert all(s.end - s.start <= 5.0 + 1e-6 for s in found)


def test_flush_ends_an_open_utterance() -> None:
    fixture = MANIFEST.get("quick_brown_fox")
    audio = load_mono(fixture, fixture.file().parent.parent.parent)
    gate = build_vad_gate(VadConfig())
    events = gate.push(audio[: 32_000].astype(np.float32))  # 2 s in
    assert gate.in_speech and isinstance(events[0], SpeechStarted)
    (ended,) = gate.flush()
    assert isinstance(ended, SpeechEnded) and ended.reason == "flush"
    assert gate.flush() == []


class Scripted:
    """A classifier that answers from a script: speech or not."""

    def __init__(self, script: list[bool]) -> None:
        self.script = iter(script)

    def classify(self, frames: np.ndarray) -> list[bool]:
        return [next(self.script) for _ in frames]


def test_speech_start_needs_a_run_of_speech() -> None:
    config = VadConfig(frame_ms=20, start_ms=60, pre_roll_ms=100)
    script = [False, True, False, True, True, True, False]
    gate = VadGate(config, Scripted(script), Framer(20),
                   Endpointer(300, 15_000))
    events = gate.push(np.zeros(320 * len(script), dtype=np.float32))
    started = [e for e in events if isinstance(e, SpeechStarted)]
    # Three speech frames in a row at frames 3-5; pre-roll of 5 frames.
    assert started == [SpeechStarted(at_s=0.02, onset_s=0.06)]
    audio = [e for e in events if isinstance(e, SpeechAudio)]
    assert sum(a.samples.size for a in audio) == 6 * 320


class FrameByFrameGate(VadGate):
    """The gate with its steady-chunk shortcut turned off."""

    def _steady(self, frames: np.ndarray, decisions: list[bool]
                ) -> list[VadEvent] | None:
        return None


def events_of(gate: VadGate, samples: np.ndarray, chunk: int
              ) -> list[tuple[str, float, int]]:
    seen: list[tuple[str, float, int]] = []
    for start in range(0, samples.size, chunk):
        for event in gate.push(samples[start : start + chunk]):
            size = event.samples.size if isinstance(event, SpeechAudio) else 0
            at = getattr(event, "at_s", 0.0)
            seen.append((type(event).__name__, at, size))
    return seen


@pytest.mark.parametrize(("chunk_ms", "max_utterance_ms"), [
    (100, 15_000), (60, 15_000), (250, 15_000), (100, 1_000)])
def test_the_steady_shortcut_changes_no_event(
    chunk_ms: int, max_utterance_ms: int,
) -> None:
    """Whole chunks of silence or of speech skip the loop per frame;
    every event, its time and its audio are as frame by frame."""
    config = VadConfig(max_utterance_ms=max_utterance_ms)
    fixture = load_manifest().get("support_call")
    samples = load_mono(fixture, fixture.file().parent.parent.parent)
    samples = samples.astype(np.float32)
    chunk = 16 * chunk_ms
    fast = build_vad_gate(config)
    slow = build_vad_gate(config)
    slow = FrameByFrameGate(slow.config, slow.classifier, slow.framer,
                            slow.endpointer)
    got = events_of(fast, samples, chunk)
    assert len(got) > 20
    assert got == events_of(slow, samples, chunk)
    assert fast.frames_passed == slow.frames_passed
