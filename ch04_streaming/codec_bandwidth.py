"""How many bytes a second of speech costs on the wire, per codec.

Chapter 4, "Audio fundamentals for serving engineers". Measured from the
sample audio, not computed from spec sheets: the same utterance as 16 kHz
16-bit PCM, 8 kHz mu-law, 24 and 48 kHz PCM, FLAC and Ogg/Opus.

    python -m ch04_streaming.codec_bandwidth
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from ch04_streaming.settings import DEFAULT_MANIFEST, fixture_file

RAW_WIDTH = {"PCM_16": 2, "ULAW": 1, "FLOAT": 4}


@dataclass(frozen=True)
class CodecCost:
    name: str
    sample_rate: int
    bytes_per_second: float


def measure(path: Path) -> CodecCost:
    """Payload bytes per second: raw samples for WAV, the whole file for
    compressed containers (their framing is part of the cost)."""
    info = sf.info(str(path))
    seconds = info.frames / info.samplerate
    if info.format == "WAV":
        size = info.frames * info.channels * RAW_WIDTH[info.subtype]
    else:
        size = path.stat().st_size
    name = f"{info.format.lower()} {info.subtype.lower()}"
    return CodecCost(name, info.samplerate, size / seconds)


def variants_of(source_id: str, manifest_path: Path) -> list[Path]:
    manifest = json.loads(manifest_path.read_text())
    return [
        fixture_file(manifest_path, f["path"]) for f in manifest["fixtures"]
        if source_id in (f["id"], f.get("variant_of"))
    ]


def table(costs: list[CodecCost]) -> str:
    base = next(c.bytes_per_second for c in costs
                if c.name == "wav pcm_16" and c.sample_rate == 16_000)
    lines = [f"{'codec':<14}{'rate Hz':>9}{'bytes/s':>10}{'kbit/s':>9}"
             f"{'vs PCM16 16k':>14}"]
    for c in sorted(costs, key=lambda c: -c.bytes_per_second):
        lines.append(
            f"{c.name:<14}{c.sample_rate:>9}{c.bytes_per_second:>10,.0f}"
            f"{c.bytes_per_second * 8 / 1000:>9.1f}"
            f"{c.bytes_per_second / base:>13.2f}x"
        )
    return "\n".join(lines)


def main(manifest_path: Path = DEFAULT_MANIFEST) -> int:
    paths = variants_of("quick_brown_fox", manifest_path)
    print(table([measure(p) for p in paths]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
