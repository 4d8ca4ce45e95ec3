"""The committed sample audio matches its manifest and the catalogue."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from examples.fixtures import (
    AUDIO_DIR,
    MANIFEST_PATH,
    AudioFixture,
    Manifest,
    load_manifest,
)
from tests.audio_checks import check_fixture, dbfs, load_mono

REPO_ROOT = AUDIO_DIR.parent.parent
MANIFEST = load_manifest()


def of_kind(manifest: Manifest, kind: str) -> list[AudioFixture]:
    return [f for f in manifest.fixtures if f.kind == kind]


@pytest.mark.parametrize("fixture", MANIFEST.fixtures, ids=lambda f: f.id)
def test_manifest_entry_matches_its_file(fixture: AudioFixture) -> None:
    check_fixture(fixture, REPO_ROOT)


def test_every_audio_file_is_in_the_manifest() -> None:
    listed = {Path(f.path).name for f in MANIFEST.fixtures}
    on_disk = {
        p.name for p in AUDIO_DIR.iterdir() if p.name != MANIFEST_PATH.name
    }
    assert on_disk == listed


def test_ids_are_unique() -> None:
    ids = [f.id for f in MANIFEST.fixtures]
    assert len(ids) == len(set(ids))


def test_single_utterances_have_silence_around_them() -> None:
    singles = of_kind(MANIFEST, "utterance")
    assert len(singles) >= 5
    for f in singles:
        assert (f.encoding, f.sample_rate, f.channels) == (
            "linear16", 16_000, 1,
        )
        assert 1.0 <= f.duration_s <= 8.0, f.id
        assert len(f.utterances) == 1, f.id
        assert f.words[0].start >= 0.3, f"{f.id}: no leading silence"
        assert f.duration_s - f.words[-1].end >= 0.3, f"{f.id}: no tail"


def test_conversation_has_pauses_an_endpointer_must_judge() -> None:
    (long_file,) = of_kind(MANIFEST, "conversation")
    assert long_file.duration_s >= 30.0
    assert len(long_file.utterances) >= 5
    utts = long_file.utterances
    pauses = [b.start - a.end for a, b in pairwise(utts)]
    assert all(0.3 <= p <= 2.0 for p in pauses), pauses
    assert min(pauses) < 0.5 and max(pauses) > 1.5  # both extremes
    word_gaps = [
        b.start - a.end
        for u in utts
        for a, b in pairwise(u.words)
    ]
    assert max(word_gaps) < min(pauses)


def test_variants_cover_what_clients_send() -> None:
    variants = of_kind(MANIFEST, "variant")
    formats = {(v.encoding, v.sample_rate) for v in variants}
    assert {("mulaw", 8_000), ("linear16", 24_000), ("linear16", 48_000),
            ("flac", 16_000)} <= formats
    assert "opus" in {v.encoding for v in variants}
    (source_id,) = {v.variant_of for v in variants}
    assert source_id is not None
    source = MANIFEST.get(source_id)
    for variant in variants:
        assert variant.utterances == source.utterances, variant.id
        assert abs(variant.duration_s - source.duration_s) < 0.001


def test_silence_and_noise_hold_no_words() -> None:
    (silence,) = of_kind(MANIFEST, "silence")
    (noise,) = of_kind(MANIFEST, "noise")
    assert silence.words == () and noise.words == ()
    assert dbfs(load_mono(silence, REPO_ROOT)) < -55
    noise_level = dbfs(load_mono(noise, REPO_ROOT))
    assert -30 < noise_level < -20


def test_lookup_of_unknown_fixture_names_it() -> None:
    with pytest.raises(KeyError, match="no_such"):
        MANIFEST.get("no_such")


def test_flac_variant_is_lossless() -> None:
    source = load_mono(MANIFEST.get("quick_brown_fox"), REPO_ROOT)
    flac = load_mono(MANIFEST.get("quick_brown_fox_flac"), REPO_ROOT)
    assert np.array_equal(flac, source)
