"""The batched matcher hears exactly what chapter 4's matcher hears.

Every fixture of the manifest (utterances, conversation segments, codec
variants, silence, noise, and speech no template knows), streamed in
chunks of 20, 100 or 250 ms or of seeded random sizes, many streams at
different phases in each call: `MatcherBank.advance` must return the
very words, times and confidences that chapter 4's `WorkerState` does
for the same calls, keep and forget utterances as it does, and refuse
what it refuses without harming the other streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.engine import (
    DecodeRequest,
    LocalMatching,
    MockRecognizer,
    load_lexicon,
)
from ch04_streaming.matcher_process import Job, MatcherProcess, WorkerState
from ch04_streaming.mock_matcher import (
    PLACEHOLDERS,
    SAMPLE_RATE,
    Lexicon,
    RecognizedWord,
)
from ch04_streaming.transcript import Hypothesis
from ch06_pipeline.batched_matcher import (
    BankMatching,
    MatcherBank,
    bank_worker,
)
from ch06_pipeline.matcher_cost import main, measure_matching_cost
from examples.fixtures import MANIFEST_PATH
from tests.ch04.test_mock_matcher import (
    CONVERSATION,
    MANIFEST,
    cut,
    read_16k,
)

Audio = npt.NDArray[np.float32]
Heard = list[list[RecognizedWord]]
PRE_ROLL_S = 0.3


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return load_lexicon(MANIFEST_PATH)


def sources() -> dict[str, Audio]:
    """Every fixture at 16 kHz, each utterance played backwards (speech
    no template matches: placeholders), and the conversation cut into
    segments as a VAD would, one of them across a 1.2 s pause."""
    audio = {f.id: read_16k(f) for f in MANIFEST.fixtures}
    for f in MANIFEST.fixtures:
        if f.kind == "utterance":
            audio[f.id + "_reversed"] = audio[f.id][::-1].copy()
    call = audio["support_call"]
    for i, u in enumerate(CONVERSATION.utterances):
        audio[f"segment_{i}"] = cut(call, u.start - PRE_ROLL_S,
                                    u.end + PRE_ROLL_S)
    one, two = CONVERSATION.utterances[1:3]
    audio["segment_1_2"] = cut(call, one.start - PRE_ROLL_S,
                               two.end + PRE_ROLL_S)
    # The call's end, its room noise, then speech: the pause walks the
    # beam off the end of the lexicon's last template, where windows
    # are cut short.
    audio["lexicon_end"] = np.concatenate(
        (call[-3 * SAMPLE_RATE :], audio["weather_forecast"][8000:24000]))
    return audio


SOURCES = sources()


def chunks(audio: Audio, size: int | None, rng: np.random.Generator
           ) -> list[Audio]:
    """`size` samples a chunk, or seeded random sizes (some shorter than
    a frame, some empty) if None."""
    pieces, start = [], 0
    while start < audio.size:
        n = size if size else int(rng.choice([0, 37, 160, 799, 2400, 7001]))
        pieces.append(audio[start : start + n])
        start += n
    return pieces


@dataclass
class Stream:
    key: int
    name: str
    pieces: list[Audio]
    start: int  # the call of its first job


def schedule(streams: list[Stream]) -> Iterator[list[Job]]:
    """Call by call, a job for each stream that has one; a stream's last
    piece is its final."""
    last = max(s.start + len(s.pieces) for s in streams)
    for call in range(last):
        jobs: list[Job] = []
        for s in streams:
            i = call - s.start
            if 0 <= i < len(s.pieces):
                jobs.append((s.key, s.pieces[i], i == len(s.pieces) - 1))
        yield jobs


def streams_of(names: list[str], size: int | None, seed: int
               ) -> list[Stream]:
    rng = np.random.default_rng(seed)
    return [Stream(key, name, chunks(SOURCES[name], size, rng),
                   int(rng.integers(0, 12)))
            for key, name in enumerate(names, start=1)]


def window(scalar: WorkerState, key: int) -> tuple[bool, int, int]:
    """Where chapter 4's matcher for `key` looks: locked, first lexicon
    frame and width of its paths (before any speech: none)."""
    alignment = scalar.matchers[key][0]._alignment
    lo, hi = alignment._window()
    return alignment._locked, lo, max(hi - lo, 0)


def assert_same_as_scalar(lexicon: Lexicon, streams: list[Stream]
                          ) -> MatcherBank:
    scalar = WorkerState(lexicon, idle_s=1e9)
    bank = MatcherBank(lexicon, idle_s=1e9)
    names = {s.key: s.name for s in streams}
    for call, jobs in enumerate(schedule(streams)):
        expected = scalar.advance(jobs, now=float(call))
        got = bank.advance(jobs, now=float(call))
        for (key, _, final), want, have in zip(jobs, expected, got,
                                               strict=True):
            assert have == want, (names[key], call, final)
            if not final:
                assert bank.window(key) == window(scalar, key), (
                    names[key], call)
    assert bank.keys == list(scalar.matchers) == []
    return bank


@pytest.mark.parametrize(
    ("size", "seed"),
    [(320, 0), (1600, 1), (4000, 2), (None, 3), (None, 4)],
    ids=["20ms", "100ms", "250ms", "random-a", "random-b"])
def test_every_fixture_at_once_hears_what_the_matcher_hears(
    lexicon: Lexicon, size: int | None, seed: int
) -> None:
    """All sources stream together, starting at different calls, so
    every call mixes streams unlocked, locked, silent and finishing."""
    assert_same_as_scalar(lexicon, streams_of(list(SOURCES), size, seed))


def test_a_hundred_streams_hear_what_the_matcher_hears(
    lexicon: Lexicon,
) -> None:
    """Wide batches: products of a hundred rows at a step, in whichever
    layout numpy picks for them, still round as chapter 4's do."""
    utterances = [f.id for f in MANIFEST.fixtures if f.kind == "utterance"]
    rng = np.random.default_rng(6)
    streams = [Stream(key, name, chunks(SOURCES[name][: 2 * SAMPLE_RATE],
                                        1600, rng), int(rng.integers(0, 4)))
               for key, name in enumerate(utterances * 17, start=1)]
    assert_same_as_scalar(lexicon, streams)


def test_the_comparison_sees_placeholders_and_template_words(
    lexicon: Lexicon,
) -> None:
    """The sources cover both kinds of answer, so equality above is
    about both."""
    bank = MatcherBank(lexicon)
    audio = {"quick_brown_fox": 1, "call_back_reversed": 2}
    jobs: list[Job] = [(key, SOURCES[name], True)
                       for name, key in audio.items()]
    known, unknown = bank.advance(jobs, now=0.0)
    spoken = [w.word for w in MANIFEST.get("quick_brown_fox").words]
    assert [w.text for w in known] == spoken
    assert unknown and {w.text for w in unknown} <= set(PLACEHOLDERS)


def test_one_stream_alone_in_its_calls(lexicon: Lexicon) -> None:
    """No other stream in the batch: the bank's arrays hold one row."""
    for name in ("weather_forecast", "segment_1_2", "noise"):
        assert_same_as_scalar(lexicon, streams_of([name], 1600, 5))


def test_utterances_are_forgotten_after_their_final(
    lexicon: Lexicon,
) -> None:
    bank = MatcherBank(lexicon, idle_s=60.0)
    audio = SOURCES["call_back"][:4000]
    bank.advance([(1, audio, False), (2, audio, False)], now=0.0)
    bank.advance([(1, audio, True)], now=30.0)
    assert bank.keys == [2]
    # The key can be used again: a new utterance, from nothing.
    fresh = MatcherBank(lexicon)
    again = bank.advance([(1, SOURCES["call_back"], True)], now=31.0)
    assert again == fresh.advance([(1, SOURCES["call_back"], True)], 0.0)


def test_idle_utterances_are_evicted(lexicon: Lexicon) -> None:
    """As chapter 4's worker does: idle for `idle_s`, the stream is
    gone, and so is its state."""
    bank = MatcherBank(lexicon, idle_s=60.0)
    audio = np.zeros(1600, dtype=np.float32)
    bank.advance([(1, audio, False), (2, audio, False)], now=0.0)
    bank.advance([(3, audio, False)], now=59.9)
    assert bank.keys == [1, 2, 3]
    bank.advance([(3, audio, False)], now=60.0)
    assert bank.keys == [3]


def test_many_utterances_outgrow_the_first_slots(lexicon: Lexicon) -> None:
    """More live utterances than the bank first makes room for."""
    speech = SOURCES["low_latency"][: SAMPLE_RATE]
    names = ["low_latency"] * 70
    streams = [Stream(k, n, [speech[:8000], speech[8000:]], 0)
               for k, n in enumerate(names, start=1)]
    assert_same_as_scalar(lexicon, streams)


def tone(seconds: float, then_silence_s: float) -> Audio:
    """A steady tone: no template fits it and no rival falls behind, so
    the beam never locks before LOCK_MAX_FRAMES."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    sound = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    room = np.zeros(round(then_silence_s * SAMPLE_RATE))
    return np.concatenate((sound, room)).astype(np.float32)


def test_unlocked_utterances_end_and_are_evicted_cleanly(
    lexicon: Lexicon,
) -> None:
    """An utterance may end, or its stream vanish, before its beam
    locks: its row of whole-lexicon paths goes, the others' stay."""
    scalar = WorkerState(lexicon, idle_s=10.0)
    bank = MatcherBank(lexicon, idle_s=10.0)
    short, speech = tone(0.5, 0.3), SOURCES["card_number"]
    calls: list[tuple[float, list[Job]]] = [
        (0.0, [(1, short, False), (2, short, False), (3, speech[:9600],
                                                      False)]),
        (1.0, [(1, short[:1600], True), (3, speech[9600:16000], False)]),
        (20.0, [(3, speech[16000:], True), (4, short, True)]),
    ]
    for now, jobs in calls:
        assert bank.advance(jobs, now) == scalar.advance(jobs, now)
        assert bank.keys == list(scalar.matchers)
    assert bank.keys == []


def test_a_key_twice_in_one_call_is_refused(lexicon: Lexicon) -> None:
    bank = MatcherBank(lexicon)
    audio = SOURCES["card_number"][:1600]
    with pytest.raises(ValueError, match="utterance 7 has two jobs"):
        bank.advance([(7, audio, False), (7, audio, False)], now=0.0)
    assert bank.keys == []


@pytest.mark.parametrize(
    "bad",
    [np.zeros((160, 2), dtype=np.float32),
     np.zeros(160, dtype=np.int16),
     np.array([0.0, np.nan], dtype=np.float32),
     np.array([np.inf], dtype=np.float32)],
    ids=["stereo", "int16", "nan", "inf"])
def test_bad_audio_is_refused_and_harms_no_other_stream(
    lexicon: Lexicon, bad: npt.NDArray[Any]
) -> None:
    """The same error as chapter 4's matcher; the call changes nothing,
    so the other streams go on to hear what they would have heard."""
    with pytest.raises(ValueError) as scalar_error:
        lexicon.new_matcher().feed(bad)
    bank = MatcherBank(lexicon)
    scalar = WorkerState(lexicon, idle_s=60.0)
    speech = SOURCES["weather_forecast"]
    first: list[Job] = [(1, speech[:8000], False), (2, speech[:4800], False)]
    assert bank.advance(first, 0.0) == scalar.advance(first, 0.0)
    with pytest.raises(ValueError) as bank_error:
        bank.advance([(1, speech[8000:9600], False), (3, bad, False)], 1.0)
    assert str(bank_error.value) == str(scalar_error.value)
    assert bank.keys == [1, 2]
    rest: list[Job] = [(1, speech[8000:], True), (2, speech[4800:], True)]
    assert bank.advance(rest, 2.0) == scalar.advance(rest, 2.0)


def decode(engine: MockRecognizer, names: list[str]) -> list[Hypothesis]:
    """Streams decoded together, 100 ms a call, each ending in a final;
    every hypothesis of every call."""

    async def run() -> list[Hypothesis]:
        await engine.start()
        try:
            decoders = [engine.new_utterance(0.0) for _ in names]
            pieces = [chunks(SOURCES[n], 1600, np.random.default_rng(0))
                      for n in names]
            got = []
            for call in range(max(len(p) for p in pieces)):
                batch = [DecodeRequest(d, p[call], call == len(p) - 1)
                         for d, p in zip(decoders, pieces, strict=True)
                         if call < len(p)]
                got += await engine.decode(batch)
            return got
        finally:
            await engine.stop()

    return asyncio.run(run())


NAMES = ["weather_forecast", "card_number_reversed", "segment_3"]


def test_bank_matching_hears_what_local_matching_hears(
    lexicon: Lexicon,
) -> None:
    device = Accelerator(PROFILES["zero"])
    expected = decode(MockRecognizer(LocalMatching(lexicon), device), NAMES)
    matching = BankMatching(lexicon)
    got = decode(MockRecognizer(matching, device), NAMES)
    assert got == expected
    assert matching.bank.keys == []  # every utterance ended in a final


def test_the_matcher_process_runs_the_bank(lexicon: Lexicon) -> None:
    """Chapter 4's worker process, holding a bank instead of a matcher
    per utterance: the same hypotheses as matching in this process."""
    device = Accelerator(PROFILES["zero"])
    expected = decode(MockRecognizer(LocalMatching(lexicon), device), NAMES)
    worker = MatcherProcess(MANIFEST_PATH, state=bank_worker)
    got = decode(MockRecognizer(worker, device), NAMES)
    assert got == expected
    # Only a bank refuses two jobs of one utterance in a trip: proof
    # that the worker holds one.
    decoder = worker.new_utterance(0.0)
    twice = [DecodeRequest(decoder, SOURCES["call_back"][:1600], False)] * 2

    async def trip() -> None:
        try:
            await worker.match(twice)
        finally:
            await worker.stop()

    with pytest.raises(ValueError, match="has two jobs"):
        asyncio.run(trip())


def test_the_cost_measurement_runs_both_ways(
    lexicon: Lexicon, capsys: pytest.CaptureFixture[str]
) -> None:
    cost = measure_matching_cost(lexicon, n_streams=3, seconds=1.5)
    assert cost.streams == 3
    assert cost.stream_seconds == pytest.approx(4.5, abs=0.2)
    assert cost.per_stream_ms > 0 and cost.batched_ms > 0
    main(["--streams", "2", "--seconds", "1"])
    assert "ms of CPU per stream-second" in capsys.readouterr().out
