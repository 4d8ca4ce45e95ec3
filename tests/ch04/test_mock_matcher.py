"""The mock recogniser's ear: fixture speech comes back word for word.

Every fixture, in every codec and rate, and the conversation cut into
VAD-like segments, must yield its reference words within 50 ms of the
manifest's times; unknown sound gets deterministic placeholders.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from ch04_streaming.mock_matcher import (
    DECISION_FRAMES,
    FRAME,
    HOP_S,
    N_BANDS,
    PLACEHOLDERS,
    SAMPLE_RATE,
    Lexicon,
    RecognizedWord,
    TemplateWord,
    frame_count,
    log_band_features,
)
from examples.fixtures import AudioFixture, Word, load_manifest

Audio = npt.NDArray[np.float32]

MANIFEST = load_manifest()
CONVERSATION = MANIFEST.get("support_call")
TOLERANCE_S = 0.05  # word times must be this close to the manifest's
PRE_ROLL_S = 0.3  # a VAD segment starts this long before the speech
CHUNK_S = 0.1
# A placeholder may reach a little beyond its burst: a frame counts as
# speech once its 25 ms window touches the sound.
BURST_EDGE_S = 0.02


def of_kind(*kinds: str) -> list[AudioFixture]:
    return [f for f in MANIFEST.fixtures if f.kind in kinds]


def resample(samples: npt.NDArray[Any], rate: int) -> Audio:
    """Band-limited resampling to 16 kHz in one FFT (the whole file)."""
    if rate == SAMPLE_RATE:
        return np.asarray(samples, dtype=np.float32)
    n_out = round(samples.size * SAMPLE_RATE / rate)
    spectrum = np.fft.rfft(samples.astype(np.float64))
    resized = np.zeros(n_out // 2 + 1, dtype=complex)
    kept = min(spectrum.size, resized.size)
    resized[:kept] = spectrum[:kept]
    out = np.fft.irfft(resized, n_out) * (n_out / samples.size)
    return out.astype(np.float32)


def read_16k(fixture: AudioFixture) -> Audio:
    samples, rate = sf.read(str(fixture.file()), dtype="float32")
    return resample(samples, rate)


def templates_from(fixtures: list[AudioFixture]) -> Lexicon:
    return Lexicon.from_recordings(
        (
            f.id,
            read_16k(f),
            [TemplateWord(w.word, w.start, w.end) for w in f.words],
        )
        for f in fixtures
    )


@pytest.fixture(scope="module")
def known_speech() -> Lexicon:
    return templates_from(of_kind("utterance", "conversation"))


def recognise(
    lexicon: Lexicon, audio: Audio, chunk_s: float = CHUNK_S
) -> list[RecognizedWord]:
    matcher = lexicon.new_matcher()
    step = max(1, round(chunk_s * SAMPLE_RATE))
    for start in range(0, audio.size, step):
        matcher.feed(audio[start : start + step])
    return matcher.words(final=True)


def cut(audio: Audio, start_s: float, end_s: float) -> Audio:
    return audio[round(start_s * SAMPLE_RATE) : round(end_s * SAMPLE_RATE)]


def heard(
    words: tuple[Word, ...], start_s: float, end_s: float
) -> list[Word]:
    """The words mostly inside [start_s, end_s], clipped to it and moved
    to segment time."""
    inside = []
    for w in words:
        overlap = min(w.end, end_s) - max(w.start, start_s)
        if overlap > (w.end - w.start) / 2:
            inside.append(Word(w.word, max(w.start, start_s) - start_s,
                               min(w.end, end_s) - start_s))
    return inside


def assert_words(got: list[RecognizedWord], expected: list[Word]) -> None:
    assert [w.text for w in got] == [w.word for w in expected]
    for g, e in zip(got, expected, strict=True):
        assert abs(g.start - e.start) <= TOLERANCE_S, (g, e)
        assert abs(g.end - e.end) <= TOLERANCE_S, (g, e)
        assert g.confidence > 0.5, g


def reversed_words(fixture: AudioFixture) -> list[tuple[float, float]]:
    """Where the words of `fixture` lie once it is played backwards."""
    d = fixture.duration_s
    return [(d - w.end, d - w.start) for w in reversed(fixture.words)]


def tone_bursts(times: list[tuple[float, float]], seconds: float) -> Audio:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    on = np.zeros(t.size, dtype=bool)
    for start, end in times:
        on |= (t >= start) & (t < end)
    room = np.random.default_rng(7).normal(0.0, 0.001, t.size)
    return (0.3 * np.sin(2 * np.pi * 440 * t) * on + room).astype(
        np.float32
    )


@pytest.mark.parametrize(
    "fixture", of_kind("utterance", "variant"), ids=lambda f: f.id
)
def test_fixture_in_any_codec_yields_its_words_on_time(
    known_speech: Lexicon, fixture: AudioFixture
) -> None:
    audio = read_16k(fixture)  # 0.5 s of room before, 0.7 s after
    words = recognise(known_speech, audio)
    assert_words(words, list(fixture.words))


@pytest.mark.parametrize(
    "index", range(len(CONVERSATION.utterances)), ids=lambda i: f"u{i}"
)
def test_conversation_segment_yields_its_utterance(
    known_speech: Lexicon, index: int
) -> None:
    utterance = CONVERSATION.utterances[index]
    start, end = utterance.start - PRE_ROLL_S, utterance.end + PRE_ROLL_S
    audio = cut(read_16k(CONVERSATION), start, end)
    words = recognise(known_speech, audio)
    assert_words(words, heard(CONVERSATION.words, start, end))
    assert [w.text for w in words] == utterance.text.split()


@pytest.mark.parametrize("first", [1, 2, 4], ids=lambda i: f"u{i}+u{i + 1}")
def test_segment_spanning_a_pause_yields_both_utterances(
    known_speech: Lexicon, first: int
) -> None:
    # Pauses after u1, u2 and u4: 1.2 s, 0.3 s and 2.0 s.
    one, two = CONVERSATION.utterances[first : first + 2]
    start, end = one.start - PRE_ROLL_S, two.end + PRE_ROLL_S
    audio = cut(read_16k(CONVERSATION), start, end)
    words = recognise(known_speech, audio)
    assert len(words) == len(one.words) + len(two.words)
    assert_words(words, heard(CONVERSATION.words, start, end))


def test_segment_cut_between_words_yields_each_part(
    known_speech: Lexicon,
) -> None:
    utterance = CONVERSATION.utterances[1]  # "i would like to check ..."
    fourth, fifth = utterance.words[3:5]
    split = (fourth.end + fifth.start) / 2
    audio = read_16k(CONVERSATION)
    start, end = utterance.start - PRE_ROLL_S, utterance.end + PRE_ROLL_S
    head = recognise(known_speech, cut(audio, start, split))
    tail = recognise(known_speech, cut(audio, split, end))
    assert_words(head, heard(CONVERSATION.words, start, split))
    assert_words(tail, heard(CONVERSATION.words, split, end))
    assert [w.text for w in head + tail] == utterance.text.split()


@pytest.mark.parametrize("fraction", [0.25, 0.75])
def test_word_cut_in_two_goes_to_the_side_with_most_of_it(
    known_speech: Lexicon, fraction: float
) -> None:
    utterance = CONVERSATION.utterances[3]  # "the order number is ..."
    word = utterance.words[3]
    split = word.start + fraction * (word.end - word.start)
    audio = read_16k(CONVERSATION)
    start, end = utterance.start - PRE_ROLL_S, utterance.end + PRE_ROLL_S
    head = recognise(known_speech, cut(audio, start, split))
    tail = recognise(known_speech, cut(audio, split, end))
    assert (word.word in [w.text for w in head[-1:]]) == (fraction > 0.5)
    assert_words(head, heard(CONVERSATION.words, start, split))
    assert_words(tail, heard(CONVERSATION.words, split, end))


def test_final_answer_weighs_the_silence_after_the_last_word(
    known_speech: Lexicon,
) -> None:
    # The caller's "two" ends u3, and sounds exactly like the "to" of
    # "i would like to check": only the silence after it tells them
    # apart.
    utterance = CONVERSATION.utterances[3]
    nine, two = utterance.words[-2:]
    start, end = (nine.end + two.start) / 2, two.end + PRE_ROLL_S
    audio = cut(read_16k(CONVERSATION), start, end)
    words = recognise(known_speech, audio)
    assert_words(words, heard(CONVERSATION.words, start, end))
    assert [w.text for w in words] == ["two"]


@pytest.mark.parametrize(
    "fixture_id", ["quick_brown_fox_opus", "call_back", "support_call"]
)
def test_final_words_do_not_depend_on_chunk_size(
    known_speech: Lexicon, fixture_id: str
) -> None:
    audio = read_16k(MANIFEST.get(fixture_id))
    if fixture_id == "support_call":
        audio = cut(audio, 9.0, 17.5)  # two utterances, 0.3 s apart
    whole = recognise(known_speech, audio, audio.size / SAMPLE_RATE)
    assert len(whole) >= 8
    for chunk_s in (0.01, 0.25, 37 / SAMPLE_RATE):
        words = recognise(known_speech, audio, chunk_s)
        assert [w.text for w in words] == [w.text for w in whole]
        for a, b in zip(words, whole, strict=True):
            assert abs(a.start - b.start) <= HOP_S
            assert abs(a.end - b.end) <= HOP_S


@pytest.mark.parametrize(
    "fixture_id", ["quick_brown_fox_8k_mulaw", "weather_forecast"]
)
def test_interim_words_grow_as_audio_arrives(
    known_speech: Lexicon, fixture_id: str
) -> None:
    fixture = MANIFEST.get(fixture_id)
    audio = read_16k(fixture)
    matcher = known_speech.new_matcher()
    step = round(CHUNK_S * SAMPLE_RATE)
    interim: list[list[str]] = []
    for start in range(0, audio.size, step):
        matcher.feed(audio[start : start + step])
        interim.append([w.text for w in matcher.words(final=False)])
    for before, after in pairwise(interim):
        assert len(after) >= len(before)
        assert after[: len(before) - 1] == before[:-1]  # last may change
    reference = [w.word for w in fixture.words]
    # Words show up while the utterance is still being spoken: by the
    # end of its third word, the first two are out.
    by_third = interim[int(fixture.words[2].end / CHUNK_S)]
    assert by_third[:2] == reference[:2]
    assert interim[-1] == reference


def test_interim_waits_for_enough_speech_but_final_does_not(
    known_speech: Lexicon,
) -> None:
    matcher = known_speech.new_matcher()
    # Two 10 ms frames short of enough, allowing for the 25 ms window.
    sound_s = (DECISION_FRAMES - 2) * HOP_S - FRAME / SAMPLE_RATE
    matcher.feed(tone_bursts([(0.3, 0.3 + sound_s)], 0.6))
    assert matcher.words(final=False) == []  # too little to tell
    (word,) = matcher.words(final=True)
    assert word.text in PLACEHOLDERS


def test_silence_yields_no_words(known_speech: Lexicon) -> None:
    audio = read_16k(MANIFEST.get("silence"))
    assert recognise(known_speech, audio) == []


def test_white_noise_yields_no_words(known_speech: Lexicon) -> None:
    audio = read_16k(MANIFEST.get("noise"))  # steady: nothing word-like
    assert recognise(known_speech, audio) == []


def test_no_audio_yields_no_words(known_speech: Lexicon) -> None:
    matcher = known_speech.new_matcher()
    matcher.feed(np.zeros(0, dtype=np.float32))
    assert matcher.words(final=True) == []
    assert matcher.audio_s == 0.0


@pytest.mark.parametrize(
    "fixture", of_kind("utterance"), ids=lambda f: f.id
)
def test_unknown_speech_gets_placeholders_in_its_bursts(
    known_speech: Lexicon, fixture: AudioFixture
) -> None:
    backwards = read_16k(fixture)[::-1].copy()  # speech, but no template
    words = recognise(known_speech, backwards)
    spans = reversed_words(fixture)
    assert {w.text for w in words} <= set(PLACEHOLDERS)
    assert all(w.confidence < 0.5 for w in words)
    for w in words:  # each placeholder inside a spoken word ...
        assert any(
            lo - BURST_EDGE_S <= w.start < w.end <= hi + BURST_EDGE_S
            for lo, hi in spans
        ), w
    for lo, hi in spans:  # ... and each word has at least one
        assert any(lo - BURST_EDGE_S <= w.start <= hi for w in words)


def test_placeholders_are_the_same_for_the_same_audio(
    known_speech: Lexicon,
) -> None:
    backwards = read_16k(MANIFEST.get("support_call"))[::-1].copy()
    first = recognise(known_speech, backwards, 0.01)
    second = recognise(known_speech, backwards, 0.25)
    assert len(first) > 50
    assert first == second


def test_tone_pattern_gets_one_placeholder_per_tone(
    known_speech: Lexicon,
) -> None:
    times = [(0.3, 0.5), (0.8, 1.3), (1.6, 1.75)]
    words = recognise(known_speech, tone_bursts(times, 2.0))
    assert len(words) == len(times)
    for w, (start, end) in zip(words, times, strict=True):
        assert w.text in PLACEHOLDERS
        assert abs(w.start - start) <= BURST_EDGE_S
        assert abs(w.end - end) <= BURST_EDGE_S


def test_speech_missing_from_the_lexicon_is_not_forced_onto_it() -> None:
    fixture = MANIFEST.get("living_room")  # the closest impostor
    others = [f for f in of_kind("utterance", "conversation")
              if f.id != fixture.id]
    words = recognise(templates_from(others), read_16k(fixture))
    assert words
    assert {w.text for w in words} <= set(PLACEHOLDERS)


def test_template_names_play_no_part(known_speech: Lexicon) -> None:
    fixtures = of_kind("utterance", "conversation")
    renamed = Lexicon.from_recordings(
        (f"recording {i}", read_16k(f),
         [TemplateWord(w.word, w.start, w.end) for w in f.words])
        for i, f in enumerate(reversed(fixtures))
    )
    audio = read_16k(MANIFEST.get("card_number"))
    words = recognise(renamed, audio)
    reference = recognise(known_speech, audio)
    assert [w.text for w in words] == [w.text for w in reference]
    for a, b in zip(words, reference, strict=True):
        assert (a.start, a.end) == pytest.approx((b.start, b.end))


def test_confidence_falls_from_one_at_a_perfect_match() -> None:
    fixture = MANIFEST.get("quick_brown_fox")
    lexicon = templates_from([fixture])
    clean = recognise(lexicon, read_16k(fixture))
    opus = recognise(lexicon, read_16k(MANIFEST.get(
        "quick_brown_fox_opus")))
    # Every word must be heard, or the bounds below hold for nothing.
    spoken = [w.word for w in fixture.words]
    assert [w.text for w in clean] == [w.text for w in opus] == spoken
    assert all(w.confidence > 0.999 for w in clean)  # the template
    assert all(0.5 < w.confidence < 0.99 for w in opus)


def test_audio_s_counts_samples_not_yet_framed(
    known_speech: Lexicon,
) -> None:
    matcher = known_speech.new_matcher()
    for size in (1, 159, 241, 7):  # less than one 25 ms frame in all
        matcher.feed(np.zeros(size, dtype=np.float32))
    assert matcher.audio_s == pytest.approx(408 / SAMPLE_RATE)


@pytest.mark.parametrize(
    "samples",
    [
        np.zeros((160, 2), dtype=np.float32),  # stereo
        np.zeros(160, dtype=np.int16),  # PCM, not float
        np.array([0.0, np.nan], dtype=np.float32),
        np.array([np.inf], dtype=np.float32),
    ],
    ids=["stereo", "int16", "nan", "inf"],
)
def test_feed_rejects_what_is_not_mono_float_audio(
    known_speech: Lexicon, samples: npt.NDArray[Any]
) -> None:
    matcher = known_speech.new_matcher()
    with pytest.raises(ValueError, match=r"mono float|finite"):
        matcher.feed(samples)
    assert matcher.audio_s == 0.0


def test_lexicon_needs_a_recording() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Lexicon.from_recordings([])


def test_features_ignore_loudness() -> None:
    fixture = MANIFEST.get("call_back")
    audio = read_16k(fixture)
    loud, quiet = log_band_features(audio), log_band_features(audio / 8)
    assert loud.shape == (frame_count(audio.size), N_BANDS)
    hop = round(HOP_S * SAMPLE_RATE)
    rms = np.array([
        np.sqrt(np.mean(audio[i * hop : i * hop + FRAME] ** 2))
        for i in range(len(loud))
    ])
    voiced = rms > 0.05  # well above the room, even divided by 8
    assert voiced.sum() > 100
    assert np.abs(loud - quiet)[voiced].max() < 0.01  # not log(64)
    assert np.abs(loud[voiced]).max() > 1.0  # features, not zeros
