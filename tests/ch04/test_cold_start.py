"""Chapter 4's side of chapter 3's cold-start mitigations: templates
from the load cache, readiness after a warm-up decode, new flags."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ch03_gpu.device import Accelerator
from ch03_gpu.profiles import PROFILES
from ch04_streaming.engine import (
    LocalMatching,
    MockRecognizer,
    build_lexicon,
    load_lexicon,
)
from ch04_streaming.mock_matcher import Lexicon
from ch04_streaming.settings import parse_settings
from examples.fixtures import MANIFEST_PATH


def test_cached_templates_are_the_built_ones_mapped(
        tmp_path: Path, lexicon: Lexicon) -> None:
    load_lexicon(MANIFEST_PATH, tmp_path)  # builds and stores
    mapped = load_lexicon(MANIFEST_PATH, tmp_path)
    assert isinstance(mapped.columns, np.memmap)
    built_arrays, built_templates = lexicon.parts()
    mapped_arrays, mapped_templates = mapped.parts()
    for name, array in built_arrays.items():
        np.testing.assert_array_equal(mapped_arrays[name], array)
    assert mapped_templates == built_templates


def test_a_changed_manifest_rebuilds_the_templates(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    shutil.copytree(MANIFEST_PATH.parent, audio)
    manifest = audio / "manifest.json"
    cache = tmp_path / "cache"
    load_lexicon(manifest, cache)
    (first,) = cache.iterdir()
    manifest.write_text(manifest.read_text().replace(
        '"generator"', '"edited": true, "generator"', 1))
    load_lexicon(manifest, cache)
    (second,) = cache.iterdir()
    assert first.name != second.name


async def test_ready_only_after_the_warm_up_decode(lexicon: Lexicon) -> None:
    device = Accelerator(PROFILES["zero"])
    recognizer = MockRecognizer(LocalMatching(lexicon), device,
                                warmup_decodes=1)
    readiness = [recognizer.ready]
    await recognizer.start()
    readiness.append(recognizer.ready)
    assert readiness == [False, True] and device.batches == 1
    await recognizer.start()  # started already: nothing runs again
    assert device.batches == 1


def test_a_start_from_the_cache_needs_no_recordings(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    shutil.copytree(MANIFEST_PATH.parent, audio)
    load_lexicon(audio / "manifest.json", tmp_path / "cache")
    for wav in audio.glob("*.wav"):
        wav.unlink()
    with pytest.raises(RuntimeError):  # libsndfile: no such file
        build_lexicon(audio / "manifest.json")
    assert load_lexicon(audio / "manifest.json", tmp_path / "cache")


def test_cold_start_flags() -> None:
    settings = parse_settings(["--warm-pool", "2", "--lexicon-cache", "",
                               "--warmup-decodes", "0"], env={})
    assert (settings.warm_pool, settings.lexicon_cache,
            settings.warmup_decodes) == (2, "", 0)
    assert parse_settings([], env={}).lexicon_cache == "build/cache"
    with pytest.raises(SystemExit):
        parse_settings(["--warm-pool", "-1"], env={})
