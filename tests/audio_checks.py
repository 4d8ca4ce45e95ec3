"""Checks that a fixture's manifest entry tells the truth about its file.

Used on the committed fixtures and on a freshly generated set, so the
generator is held to the same standard as its output.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf

from examples.fixtures import AudioFixture

WINDOW_S = 0.010
WORD_MIN_DBFS = -35.0  # a spoken word is far louder than the room
EDGE_MIN_PEAK = 0.008  # 8x the room noise: a word starts on speech
SILENCE_MAX_DBFS = -50.0  # the room floor is -60 dBFS
# How far from a word edge the room must be quiet again. Opus codes
# 20 ms frames with overlap, so it smears a word's edges further.
QUIET_MARGIN_S = {"opus": 0.050}
DEFAULT_MARGIN_S = 0.015

SUBTYPES = {
    ("wav", "linear16"): ("WAV", "PCM_16"),
    ("wav", "mulaw"): ("WAV", "ULAW"),
    ("flac", "flac"): ("FLAC", "PCM_16"),
    ("ogg", "opus"): ("OGG", "OPUS"),
}


def dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return float(20 * np.log10(max(rms, 1e-12)))


def windows(samples: np.ndarray, rate: int) -> list[np.ndarray]:
    size = round(WINDOW_S * rate)
    return [
        samples[i : i + size]
        for i in range(0, samples.size - size + 1, size)
    ]


def check_file_matches(fixture: AudioFixture, root: Path) -> None:
    path = fixture.file(root)
    info = sf.info(str(path))
    assert (info.format, info.subtype) == SUBTYPES[
        (fixture.container, fixture.encoding)
    ], fixture.id
    assert info.samplerate == fixture.sample_rate, fixture.id
    assert info.channels == fixture.channels == 1, fixture.id
    assert abs(info.frames / info.samplerate - fixture.duration_s) < 1e-6
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == fixture.sha256, f"{fixture.id}: file changed"


def check_structure(fixture: AudioFixture) -> None:
    previous_end = 0.0
    for utterance in fixture.utterances:
        words = utterance.words
        assert words, fixture.id
        assert utterance.start == words[0].start, fixture.id
        assert utterance.end == words[-1].end, fixture.id
        assert utterance.text == " ".join(w.word for w in words)
        for word in words:
            assert previous_end <= word.start < word.end, (fixture.id, word)
            previous_end = word.end
    assert previous_end <= fixture.duration_s, fixture.id
    joined = " ".join(u.text for u in fixture.utterances)
    assert fixture.text == joined, fixture.id


def load_mono(fixture: AudioFixture, root: Path) -> np.ndarray:
    samples, rate = sf.read(str(fixture.file(root)), dtype="float64")
    assert rate == fixture.sample_rate
    return np.asarray(samples)


def check_words_on_speech(fixture: AudioFixture, root: Path) -> None:
    """Every word interval is speech, and the room is quiet between."""
    audio, rate = load_mono(fixture, root), fixture.sample_rate
    edge = round(WINDOW_S * rate)
    quiet = np.ones(audio.size, dtype=bool)
    margin = round(
        QUIET_MARGIN_S.get(fixture.encoding, DEFAULT_MARGIN_S) * rate
    )
    for word in fixture.words:
        start, end = round(word.start * rate), round(word.end * rate)
        spoken = audio[start:end]
        assert dbfs(spoken) >= WORD_MIN_DBFS, (fixture.id, word)
        assert np.abs(spoken[:edge]).max() >= EDGE_MIN_PEAK, (
            fixture.id, word, "starts in silence",
        )
        assert np.abs(spoken[-edge:]).max() >= EDGE_MIN_PEAK, (
            fixture.id, word, "ends in silence",
        )
        quiet[max(start - margin, 0) : end + margin] = False
    loud = [
        round(i * WINDOW_S, 3)
        for i, window in enumerate(windows(audio, rate))
        if quiet[i * edge : (i + 1) * edge].all()
        and dbfs(window) > SILENCE_MAX_DBFS
    ]
    assert not loud, f"{fixture.id}: sound outside words at {loud[:5]} s"


def check_fixture(fixture: AudioFixture, root: Path) -> None:
    check_file_matches(fixture, root)
    check_structure(fixture)
    if fixture.kind != "noise":
        check_words_on_speech(fixture, root)
