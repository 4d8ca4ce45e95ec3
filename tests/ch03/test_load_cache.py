"""The load cache: mapped when fresh, rebuilt when stale or damaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ch03_gpu.load_cache import CacheEntry, LoadCache, Outcome


class Builder:
    """Builds a small entry and counts how often it had to."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> CacheEntry:
        self.calls += 1
        return CacheEntry({"table": np.arange(12.0).reshape(3, 4)},
                          {"rows": 3})


def test_a_fresh_entry_is_mapped_not_built(tmp_path: Path) -> None:
    cache, build = LoadCache(tmp_path, "t", 1), Builder()
    _, first_outcome = cache.load_or_build([b"inputs"], build)
    again, again_outcome = cache.load_or_build([b"inputs"], build)
    assert (first_outcome, again_outcome) == (Outcome.BUILT, Outcome.HIT)
    assert build.calls == 1
    assert isinstance(again.arrays["table"], np.memmap)
    assert not again.arrays["table"].flags.writeable
    np.testing.assert_array_equal(again.arrays["table"],
                                  np.arange(12.0).reshape(3, 4))
    assert again.meta == {"rows": 3}


def test_changed_inputs_miss_and_the_old_entry_goes(tmp_path: Path) -> None:
    cache, build = LoadCache(tmp_path, "t", 1), Builder()
    cache.load_or_build([b"manifest v1"], build)
    _, outcome = cache.load_or_build([b"manifest v2"], build)
    assert outcome is Outcome.BUILT and build.calls == 2
    assert [p.name for p in tmp_path.iterdir()] == [
        cache.entry_path(cache.key([b"manifest v2"])).name]


def test_a_new_format_version_misses(tmp_path: Path) -> None:
    build = Builder()
    LoadCache(tmp_path, "t", 1).load_or_build([b"inputs"], build)
    _, outcome = LoadCache(tmp_path, "t", 2).load_or_build([b"inputs"],
                                                           build)
    assert outcome is Outcome.BUILT and build.calls == 2


def test_a_truncated_array_is_rebuilt_not_a_crash(tmp_path: Path) -> None:
    cache, build = LoadCache(tmp_path, "t", 1), Builder()
    cache.load_or_build([b"inputs"], build)
    array_file = cache.entry_path(cache.key([b"inputs"])) / "table.npy"
    array_file.write_bytes(array_file.read_bytes()[:-16])
    entry, outcome = cache.load_or_build([b"inputs"], build)
    assert outcome is Outcome.REBUILT and build.calls == 2
    assert entry.arrays["table"].shape == (3, 4)


def test_a_garbled_entry_file_is_rebuilt(tmp_path: Path) -> None:
    cache, build = LoadCache(tmp_path, "t", 1), Builder()
    cache.load_or_build([b"inputs"], build)
    entry_dir = cache.entry_path(cache.key([b"inputs"]))
    (entry_dir / "entry.json").write_text("{not json")
    _, outcome = cache.load_or_build([b"inputs"], build)
    assert outcome is Outcome.REBUILT
    _, outcome = cache.load_or_build([b"inputs"], build)
    assert outcome is Outcome.HIT and build.calls == 2


def test_an_unwritable_directory_still_serves(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    entry, outcome = LoadCache(blocked, "t", 1).load_or_build(
        [b"inputs"], Builder())
    assert outcome is Outcome.UNCACHED
    assert entry.arrays["table"].shape == (3, 4)
