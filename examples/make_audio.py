"""Generate the sample audio in `examples/audio/` and its manifest.

The fixtures every chapter streams. Speech is synthesised word by word
with espeak-ng and laid end to end, so each word's start and end time is
known to the sample, not estimated by an aligner; sox resamples and
re-encodes, opusenc makes the Ogg/Opus variant. The files are committed,
so readers need none of these tools; to regenerate them (Debian:
`apt-get install espeak-ng sox opus-tools`):

    python -m examples.make_audio
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from examples.fixtures import (
    AUDIO_DIR,
    AudioFixture,
    Manifest,
    Utterance,
    Word,
    manifest_to_dict,
)

RATE = 16_000
WORDS_PER_MINUTE = 160
WORD_GAP_S = 0.08  # between words of one utterance
LEAD_S = 0.5  # silence before the first utterance
TAIL_S = 0.7  # silence after the last one
WORD_PEAK = 0.6  # each word is normalised to this peak
TRIM_RATIO = 0.02  # -34 dB below its peak, a word's edge is silence
FADE_S = 0.002  # fade at word edges, so cuts do not click
ROOM_NOISE_DBFS = -60.0  # the quiet floor of a real recording
NOISE_DBFS = -25.0  # the noise-only fixture
PLAIN_DURATION_S = 5.0  # the silence- and noise-only fixtures
SEED = 20261127

UTTERANCES = (
    ("quick_brown_fox", "en-us",
     "the quick brown fox jumps over the lazy dog"),
    ("weather_forecast", "en-gb",
     "please read me the weather forecast for tomorrow"),
    ("card_number", "en-us+f3",
     "my card number is four one one one two two two two"),
    ("call_back", "en-gb-scotland",
     "call me back at five five five zero one nine nine"),
    ("low_latency", "en-us+m3",
     "streaming audio needs a low latency path"),
    ("living_room", "en-029",
     "turn off the lights in the living room"),
)

AGENT, CALLER = "en-us+f3", "en-gb"
CONVERSATION = (
    (AGENT, "hello and thank you for calling"),
    (CALLER, "i would like to check the status of my order"),
    (AGENT, "of course what is the order number"),
    (CALLER, "the order number is seven three nine two"),
    (CALLER, "it was supposed to arrive on monday"),
    (AGENT, "let me look that up for you"),
    (AGENT, "your package left the warehouse this morning"),
    (AGENT, "it should arrive by friday afternoon"),
    (CALLER, "great thank you very much for your help"),
    (AGENT, "you are welcome have a nice day"),
)
# Pauses between the conversation's utterances: 0.3 s to 2 s, so an
# endpointer has both short hesitations and long turn gaps to decide on.
PAUSES_S = (0.6, 1.2, 0.3, 0.9, 2.0, 0.45, 1.5, 0.35, 1.0)

VARIANT_SOURCE = "quick_brown_fox"


DEBIAN_PACKAGES = "espeak-ng sox opus-tools"


class ToolMissingError(RuntimeError):
    """A synthesis or encoding tool is not installed."""


def run_tool(args: list[str], stdin: bytes | None = None) -> bytes:
    if shutil.which(args[0]) is None:
        raise ToolMissingError(
            f"{args[0]} not found: apt-get install {DEBIAN_PACKAGES}"
        )
    done = subprocess.run(args, input=stdin, capture_output=True, check=True)
    return done.stdout


def synthesise_word(word: str, voice: str) -> np.ndarray:
    """Speak one word; return float32 samples at 16 kHz, edges trimmed."""
    wav = run_tool(
        ["espeak-ng", "-v", voice, "-s", str(WORDS_PER_MINUTE),
         "--stdout", word]
    )
    wav16k = run_tool(
        ["sox", "-R", "-t", "wav", "-", "-t", "wav", "-r", str(RATE),
         "-e", "floating-point", "-b", "32", "-c", "1", "-", "rate", "-v"],
        stdin=wav,
    )
    samples, _ = sf.read(io.BytesIO(wav16k), dtype="float32")
    return shape_word(samples)


def shape_word(samples: np.ndarray) -> np.ndarray:
    """Trim silent edges, normalise the peak and fade the cut edges."""
    peak = float(np.max(np.abs(samples)))
    loud = np.flatnonzero(np.abs(samples) > TRIM_RATIO * peak)
    if peak == 0.0:
        raise ValueError("the synthesiser produced only silence")
    word = samples[loud[0] : loud[-1] + 1].astype(np.float64)
    word *= WORD_PEAK / np.max(np.abs(word))
    fade = min(int(FADE_S * RATE), word.size // 2)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    word[:fade] *= ramp
    word[word.size - fade :] *= ramp[::-1]
    return word.astype(np.float32)


@dataclass
class Timeline:
    """Audio laid end to end, remembering where every word landed."""

    chunks: list[np.ndarray] = field(default_factory=list)
    position: int = 0  # in samples
    utterances: list[Utterance] = field(default_factory=list)

    def silence(self, seconds: float) -> None:
        n = round(seconds * RATE)
        self.chunks.append(np.zeros(n, dtype=np.float32))
        self.position += n

    def say(self, words: list[tuple[str, np.ndarray]]) -> None:
        spoken = []
        for i, (text, audio) in enumerate(words):
            if i:
                self.silence(WORD_GAP_S)
            start = self.position
            self.chunks.append(audio)
            self.position += audio.size
            spoken.append(Word(text, seconds(start), seconds(self.position)))
        self.utterances.append(
            Utterance(
                spoken[0].start,
                spoken[-1].end,
                " ".join(w.word for w in spoken),
                tuple(spoken),
            )
        )

    def render(self, rng: np.random.Generator) -> np.ndarray:
        audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0)
        noisy: np.ndarray = audio + room_noise(audio.size, rng)
        return noisy


def seconds(samples: int) -> float:
    return round(samples / RATE, 7)


def room_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    rms = 10 ** (ROOM_NOISE_DBFS / 20)
    return (rng.standard_normal(n) * rms).astype(np.float32)


def speak(text: str, voice: str) -> list[tuple[str, np.ndarray]]:
    return [(w, synthesise_word(w, voice)) for w in text.split()]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Writer:
    """Writes fixtures into one folder and records them for the manifest."""

    out_dir: Path
    repo_root: Path
    fixtures: list[AudioFixture] = field(default_factory=list)

    def wav16k(
        self,
        fixture_id: str,
        kind: str,
        audio: np.ndarray,
        utterances: list[Utterance],
        voice: str | None = None,
    ) -> Path:
        path = self.out_dir / f"{fixture_id}.wav"
        clipped = np.clip(audio, -1.0, 1.0)
        sf.write(path, clipped, RATE, subtype="PCM_16")
        self.record(fixture_id, kind, path, "wav", "linear16",
                    tuple(utterances), voice=voice)
        return path

    def record(
        self,
        fixture_id: str,
        kind: str,
        path: Path,
        container: str,
        encoding: str,
        utterances: tuple[Utterance, ...],
        variant_of: str | None = None,
        voice: str | None = None,
    ) -> None:
        info = sf.info(str(path))
        self.fixtures.append(
            AudioFixture(
                id=fixture_id,
                kind=kind,
                path=path.relative_to(self.repo_root).as_posix(),
                container=container,
                encoding=encoding,
                sample_rate=info.samplerate,
                channels=info.channels,
                duration_s=round(info.frames / info.samplerate, 6),
                sha256=sha256_of(path),
                text=" ".join(u.text for u in utterances),
                utterances=utterances,
                variant_of=variant_of,
                voice=voice,
            )
        )

    def variants(self, source: AudioFixture) -> None:
        """Re-encode one utterance as clients send it: phone, web, files."""
        src = str(source.file(self.repo_root))
        for name, encoding, sox_args in (
            ("8k_mulaw.wav", "mulaw",
             ["-r", "8000", "-e", "mu-law", "-b", "8"]),
            ("24k.wav", "linear16", ["-r", "24000", "-b", "16"]),
            ("48k.wav", "linear16", ["-r", "48000", "-b", "16"]),
            ("flac.flac", "flac", ["-b", "16"]),
        ):
            path = self.out_dir / f"{source.id}_{name}"
            run_tool(["sox", "-R", "-D", src, *sox_args, str(path),
                      "rate", "-v"])
            self.record_variant(source, path, encoding)
        # Opus as browsers send it: 48 kHz, 32 kbit/s, tuned for speech.
        # A fixed stream serial number keeps the file reproducible.
        wav48k = self.out_dir / f"{source.id}_48k.wav"
        opus = self.out_dir / f"{source.id}_opus.ogg"
        run_tool(["opusenc", "--quiet", "--serial", "1", "--speech",
                  "--bitrate", "32", str(wav48k), str(opus)])
        self.record_variant(source, opus, "opus")

    def record_variant(
        self, source: AudioFixture, path: Path, encoding: str
    ) -> None:
        container = {".wav": "wav", ".flac": "flac", ".ogg": "ogg"}
        self.record(path.stem, "variant", path, container[path.suffix],
                    encoding, source.utterances, variant_of=source.id,
                    voice=source.voice)


def tool_versions() -> dict[str, str]:
    """The first line each tool prints of its version: files made by
    other versions differ, so the manifest says which made them."""
    versions = {}
    for tool in ("espeak-ng", "sox", "opusenc"):
        first = run_tool([tool, "--version"]).decode().splitlines()[0]
        # espeak-ng also names its data folder, which varies by machine.
        versions[tool] = first.split("Data at:")[0].strip()
    return versions


def generate(out_dir: Path, repo_root: Path) -> Manifest:
    rng = np.random.default_rng(SEED)
    writer = Writer(out_dir, repo_root)
    for fixture_id, voice, text in UTTERANCES:
        timeline = Timeline()
        timeline.silence(LEAD_S)
        timeline.say(speak(text, voice))
        timeline.silence(TAIL_S)
        writer.wav16k(fixture_id, "utterance", timeline.render(rng),
                      timeline.utterances, voice=voice)

    timeline = Timeline()
    timeline.silence(LEAD_S)
    for i, (voice, text) in enumerate(CONVERSATION):
        if i:
            timeline.silence(PAUSES_S[i - 1])
        timeline.say(speak(text, voice))
    timeline.silence(TAIL_S)
    writer.wav16k("support_call", "conversation", timeline.render(rng),
                  timeline.utterances, voice=f"{AGENT},{CALLER}")

    plain = round(PLAIN_DURATION_S * RATE)
    writer.wav16k("silence", "silence", room_noise(plain, rng), [])
    noise_rms = 10 ** (NOISE_DBFS / 20)
    writer.wav16k("noise", "noise",
                  rng.standard_normal(plain) * noise_rms, [])

    source = next(f for f in writer.fixtures if f.id == VARIANT_SOURCE)
    writer.variants(source)
    return Manifest(
        "examples.make_audio", tool_versions(), tuple(writer.fixtures)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=AUDIO_DIR)
    parser.add_argument(
        "--repo-root", type=Path, default=AUDIO_DIR.parent.parent,
        help="paths in the manifest are relative to this folder",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        manifest = generate(args.out.resolve(), args.repo_root.resolve())
    except ToolMissingError as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    manifest_path = args.out / "manifest.json"
    text = json.dumps(manifest_to_dict(manifest), indent=2)
    manifest_path.write_text(text + "\n")
    print(f"wrote {len(manifest.fixtures)} fixtures and {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
