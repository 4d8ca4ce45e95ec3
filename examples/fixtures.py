"""The sample-audio catalogue: typed records of `examples/audio/`.

Every chapter's tests and demos stream these fixtures, and compare what
comes back with the reference text and word times recorded here. The
manifest is written by `examples.make_audio` and read back through
`load_manifest`, which parses the JSON once into these dataclasses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path, PurePosixPath
from typing import Any

# Package data of `examples`: the same lookup finds the audio in a
# checkout and in an installed wheel.
AUDIO_DIR = Path(str(files("examples") / "audio"))
MANIFEST_PATH = AUDIO_DIR / "manifest.json"


@dataclass(frozen=True)
class Word:
    """One word and where it is spoken, in seconds from file start."""

    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech between pauses."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...]


@dataclass(frozen=True)
class AudioFixture:
    """One audio file and the ground truth about its content."""

    id: str
    kind: str  # utterance, conversation, variant, silence or noise
    path: str  # relative to the repository root
    container: str  # wav, flac or ogg
    encoding: str  # linear16, mulaw, flac or opus
    sample_rate: int
    channels: int
    duration_s: float
    sha256: str
    text: str
    utterances: tuple[Utterance, ...]
    variant_of: str | None = None
    voice: str | None = None

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(w for u in self.utterances for w in u.words)

    def file(self, root: Path | None = None) -> Path:
        """The file under `root`, a repository root; without one, the
        file beside the catalogue's manifest, wherever it is installed.
        """
        if root is not None:
            return root / self.path
        return AUDIO_DIR / PurePosixPath(self.path).name


@dataclass(frozen=True)
class Manifest:
    """All fixtures, in catalogue order."""

    generator: str
    tools: dict[str, str]  # the version of each tool that made the files
    fixtures: tuple[AudioFixture, ...]

    def get(self, fixture_id: str) -> AudioFixture:
        for fixture in self.fixtures:
            if fixture.id == fixture_id:
                return fixture
        raise KeyError(f"no fixture with id {fixture_id!r}")


def _utterance(raw: dict[str, Any]) -> Utterance:
    words = tuple(Word(**w) for w in raw["words"])
    return Utterance(raw["start"], raw["end"], raw["text"], words)


def manifest_from_dict(raw: dict[str, Any]) -> Manifest:
    fixtures = []
    for item in raw["fixtures"]:
        fields = dict(item)
        fields["utterances"] = tuple(
            _utterance(u) for u in item["utterances"]
        )
        fixtures.append(AudioFixture(**fields))
    return Manifest(raw["generator"], raw["tools"], tuple(fixtures))


def manifest_to_dict(manifest: Manifest) -> dict[str, Any]:
    return asdict(manifest)


def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    return manifest_from_dict(json.loads(path.read_text()))
