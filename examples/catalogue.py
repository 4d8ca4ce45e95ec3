"""Print the sample-audio catalogue: `python -m examples.catalogue`.

A table of every fixture in `examples/audio/manifest.json`: what it is,
how it is encoded, how long it lasts, and what is said in it. Durations
are read from the audio files themselves, not copied from the manifest.
"""

from __future__ import annotations

import sys

import soundfile as sf

from examples.fixtures import AudioFixture, Manifest, load_manifest

TEXT_WIDTH = 44


def measured_duration(fixture: AudioFixture) -> float:
    info = sf.info(str(fixture.file()))
    return float(info.frames / info.samplerate)


def shorten(text: str, width: int = TEXT_WIDTH) -> str:
    if not text:
        return "(no speech)"
    return text if len(text) <= width else text[: width - 3] + "..."


def catalogue_table(manifest: Manifest) -> str:
    header = ("id", "kind", "encoding", "rate", "secs", "words", "says")
    rows = [header]
    for f in manifest.fixtures:
        rows.append((
            f.id, f.kind, f.encoding, f"{f.sample_rate}",
            f"{measured_duration(f):.2f}", f"{len(f.words)}",
            shorten(f.text),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {3, 4, 5}
    lines = [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def main() -> int:
    print(catalogue_table(load_manifest()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
