"""The fixture generator: exact word times, and a reproducible set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from examples import make_audio
from examples.fixtures import (
    AudioFixture,
    Utterance,
    Word,
    load_manifest,
)
from tests.audio_checks import (
    check_fixture,
    check_words_on_speech,
    load_mono,
)
from tests.environment import require_commands, unavailable

REPO_ROOT = Path(__file__).resolve().parent.parent
RATE = make_audio.RATE


def tone(n: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(n) / RATE
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_shape_word_trims_quiet_edges_and_normalises() -> None:
    quiet = np.full(800, 0.001, dtype=np.float32)  # -60 dBFS padding
    shaped = make_audio.shape_word(np.concatenate([quiet, tone(1600), quiet]))
    assert 1500 <= shaped.size <= 1600
    assert np.max(np.abs(shaped)) == pytest.approx(make_audio.WORD_PEAK)


def test_shape_word_rejects_silence() -> None:
    with pytest.raises(ValueError, match="only silence"):
        make_audio.shape_word(np.zeros(160, dtype=np.float32))


def test_timeline_records_word_times_to_the_sample() -> None:
    timeline = make_audio.Timeline()
    timeline.silence(0.5)
    timeline.say([("hello", tone(4000)), ("world", tone(2400))])
    gap = round(make_audio.WORD_GAP_S * RATE)
    (utterance,) = timeline.utterances
    assert utterance.text == "hello world"
    hello, world = utterance.words
    assert (hello.start, hello.end) == (0.5, 0.75)
    assert world.start == (8000 + 4000 + gap) / RATE
    assert world.end == world.start + 2400 / RATE
    audio = timeline.render(np.random.default_rng(0))
    assert audio.size == 8000 + 4000 + gap + 2400


def test_missing_tool_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to run here
    assert make_audio.main(["--out", str(tmp_path)]) == 1
    assert "apt-get install espeak-ng sox" in capsys.readouterr().err


def shifted(fixture: AudioFixture, seconds: float) -> AudioFixture:
    utterances = tuple(
        Utterance(
            u.start + seconds, u.end + seconds, u.text,
            tuple(Word(w.word, w.start + seconds, w.end + seconds)
                  for w in u.words),
        )
        for u in fixture.utterances
    )
    return dataclasses.replace(fixture, utterances=utterances)


@pytest.mark.parametrize("offset", [-0.08, 0.08])
def test_word_checks_catch_misaligned_times(offset: float) -> None:
    fixture = load_manifest().get("quick_brown_fox")
    with pytest.raises(AssertionError, match="silence"):
        check_words_on_speech(shifted(fixture, offset), REPO_ROOT)


def test_file_check_catches_a_changed_file() -> None:
    fixture = load_manifest().get("silence")
    forged = dataclasses.replace(fixture, sha256="0" * 64)
    with pytest.raises(AssertionError, match="file changed"):
        check_fixture(forged, REPO_ROOT)


def test_generator_reproduces_the_committed_catalogue(
    tmp_path: Path,
) -> None:
    require_commands("espeak-ng", "sox")
    out = tmp_path / "examples" / "audio"
    assert make_audio.main(
        ["--out", str(out), "--repo-root", str(tmp_path)]
    ) == 0
    generated = load_manifest(out / "manifest.json")
    committed = load_manifest()
    assert [(f.id, f.kind, f.text) for f in generated.fixtures] == [
        (f.id, f.kind, f.text) for f in committed.fixtures
    ]
    for fixture in generated.fixtures:
        check_fixture(fixture, tmp_path)
    # Other versions synthesise other speech, so only the same ones can
    # be compared; CI installs Debian's, the versions that made the
    # committed set, and so must compare.
    if generated.tools != committed.tools:
        unavailable(f"the committed audio was made by {committed.tools},"
                    f" this machine has {generated.tools}")
    # Every duration and word time is exactly the committed one, and so
    # is every file's content.
    assert [unsigned(f) for f in generated.fixtures] == [
        unsigned(f) for f in committed.fixtures]
    for made, kept in zip(generated.fixtures, committed.fixtures,
                          strict=True):
        if made.encoding == "opus":
            source = generated.get(f"{made.variant_of}_48k")  # its input
            assert_same_opus(load_mono(made, tmp_path),
                             load_mono(kept, REPO_ROOT),
                             load_mono(source, tmp_path))
        else:
            assert made.sha256 == kept.sha256, f"{made.id}: file differs"


def unsigned(fixture: AudioFixture) -> AudioFixture:
    return dataclasses.replace(fixture, sha256="")


# libopus codes in floating point with vector instructions chosen by
# the CPU, so the same versions on two machines can write files that
# differ in a few bits (and so in their digests), while what they
# decode to differs by about 1/100,000 of the codec's own error. Another
# bitrate or encoder setting differs by about a third of it.
OPUS_AGREEMENT = 0.01


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples))))


def assert_same_opus(made: np.ndarray, committed: np.ndarray,
                     source: np.ndarray) -> None:
    assert made.size == committed.size == source.size
    codec_error = rms(committed - source)
    assert rms(made - committed) <= OPUS_AGREEMENT * codec_error, (
        "the Opus variant decodes to other audio")
