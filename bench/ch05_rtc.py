"""Benchmark of chapter 5's lossy-link lab: head-of-line blocking.

Runs `python -m ch05_protocols.lossy` (60 s of speech per
transport and loss rate, 0, 1, 2 and 5%; it needs root, `ip` and
`nft`) and records, for each transport at each rate, the
chunk-to-result latency (p50, p99, max), how many chunks it was
measured on (and how many no result reached), how many results came,
the audio lost, and the share of packets the rule really dropped. Its
table and plot go to build/ch05/lossy/.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from ch05_protocols.lossy import main
from ch05_protocols.netns import missing_requirements

Figures = dict[str, float]
OUT = Path(__file__).resolve().parent.parent / "build/ch05/lossy"
MEASURES = ("p50_ms", "p99_ms", "max_ms", "chunks", "unanswered",
            "results", "audio_lost_pct", "observed_loss_pct")


def figures(cells: Sequence[Mapping[str, object]]) -> Figures:
    """`p99_ms_websocket_at_5pct` and the like, from the lab's cells;
    a measure the lab could not take (no result came) is left out."""
    out: Figures = {}
    for cell in cells:
        rate = f"{cell['loss_pct']:g}".replace(".", "_")
        for measure in MEASURES:
            value = cell[measure]
            if isinstance(value, int | float):
                out[f"{measure}_{cell['transport']}_at_{rate}pct"] = value
    return out


def run() -> Figures:
    missing = missing_requirements()
    if missing:
        raise RuntimeError("the lossy-link lab needs " + "; ".join(missing))
    code = main(["--out", str(OUT)])
    if code != 0:
        raise RuntimeError(f"the lossy-link lab exited with status {code}")
    return figures(json.loads((OUT / "lossy.json").read_text())["cells"])
