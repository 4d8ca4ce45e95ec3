"""A load cache: what every start computes, computed once and mapped.

Chapter 3, "Cold start mitigation" (model caching). A service that
derives arrays from its inputs at every start (templates from sample
audio here; compiled engines, converted weights or tokenizer tables in
a real server) can compute them once, keyed by a hash of everything
they are derived from and a format version, and memory-map them
afterwards: `np.load(mmap_mode="r")` reads a header and maps the file,
so a start pays for the pages it touches, and every process that maps
the same file shares them in the page cache. A key that changes (new
inputs, new code, new format) misses; an entry that cannot be read is
rebuilt, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

ENTRY_FILE = "entry.json"  # written last: an entry without it is torn


@dataclass(frozen=True)
class CacheEntry:
    """Named arrays and the JSON-able facts that go with them."""

    arrays: Mapping[str, npt.NDArray[Any]]
    meta: Mapping[str, Any]


class Outcome(StrEnum):
    HIT = "hit"  # mapped from disk
    BUILT = "built"  # no entry for the key: built and stored
    REBUILT = "rebuilt"  # an unreadable entry: built again
    UNCACHED = "uncached"  # built, but the directory refused the entry


@dataclass(frozen=True)
class LoadCache:
    """Entries `<directory>/<name>-<key>/`, one `.npy` file per array."""

    directory: Path
    name: str
    format_version: int

    def key(self, sources: Sequence[bytes]) -> str:
        """A hash of the format version and every source, in order."""
        digest = hashlib.sha256(f"{self.name}:{self.format_version}"
                                .encode())
        for source in sources:
            digest.update(hashlib.sha256(source).digest())
        return digest.hexdigest()

    def entry_path(self, key: str) -> Path:
        return self.directory / f"{self.name}-{key[:16]}"

    def load_or_build(self, sources: Sequence[bytes],
                      build: Callable[[], CacheEntry]
                      ) -> tuple[CacheEntry, Outcome]:
        """The entry for `sources`, mapped; built and stored if missing."""
        key = self.key(sources)
        path = self.entry_path(key)
        outcome = Outcome.BUILT
        if path.exists():
            try:
                return self._load(path, key), Outcome.HIT
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.warning("event=cache_unreadable path=%s error=%r",
                            path, error)
                shutil.rmtree(path, ignore_errors=True)
                outcome = Outcome.REBUILT
        built = build()
        try:
            self._store(path, key, built)
        except OSError as error:
            log.warning("event=cache_not_stored path=%s error=%r",
                        path, error)
            return built, Outcome.UNCACHED
        self._prune(keep=path)
        # Served from the file just written, not from `built`: every
        # process then maps the same pages.
        return self._load(path, key), outcome

    def _load(self, path: Path, key: str) -> CacheEntry:
        entry = json.loads((path / ENTRY_FILE).read_text(encoding="utf-8"))
        if entry["key"] != key or entry["format"] != self.format_version:
            raise ValueError("entry written for another key or format")
        arrays = {}
        for name, spec in entry["arrays"].items():
            array = np.load(path / f"{name}.npy", mmap_mode="r",
                            allow_pickle=False)
            # A truncated file fails here or in np.load, not mid-stream.
            if (list(array.shape) != spec["shape"]
                    or str(array.dtype) != spec["dtype"]):
                raise ValueError(f"{name}.npy is not what the entry says")
            arrays[name] = array
        return CacheEntry(arrays, entry["meta"])

    def _store(self, path: Path, key: str, built: CacheEntry) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Written aside, then renamed into place in one step: a reader
        # sees a whole entry or none, even with a writer killed midway.
        scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        specs = {}
        for name, array in built.arrays.items():
            np.save(scratch / f"{name}.npy", np.ascontiguousarray(array),
                    allow_pickle=False)
            specs[name] = {"shape": list(array.shape),
                           "dtype": str(array.dtype)}
        entry = {"key": key, "format": self.format_version,
                 "arrays": specs, "meta": built.meta}
        (scratch / ENTRY_FILE).write_text(json.dumps(entry),
                                          encoding="utf-8")
        try:
            scratch.rename(path)
        except OSError:
            # Another process stored the same entry first: use theirs.
            shutil.rmtree(scratch, ignore_errors=True)
            if not path.exists():
                raise

    def _prune(self, keep: Path) -> None:
        """Entries of older keys go; a process still mapping one keeps
        its pages until it unmaps them."""
        for stale in self.directory.glob(f"{self.name}-*"):
            if stale != keep:
                shutil.rmtree(stale, ignore_errors=True)
