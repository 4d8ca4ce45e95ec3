"""The lossy-link lab's figures, read for the decision framework.

Chapter 5, "Decision framework" and "WebTransport: QUIC datagrams,
head-of-line blocking". What `python -m ch05_protocols.lossy` measured
(`make bench` keeps it in `bench/results/ch05_rtc.json`): each
transport's p99 chunk-to-result latency and the audio it lost at 0, 1,
2 and 5 % packet loss, read by transport and rate, with the run they
came from, for `choose.choose_measured` to quote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / (
    "bench/results/ch05_rtc.json")
FIGURE = re.compile(r"^(p99_ms|audio_lost_pct)_(\w+?)_at_(\d+(?:_\d+)?)pct$")
@dataclass(frozen=True)
class LabFigures:
    """transport -> loss % -> (p99 ms, audio lost %), and their origin."""

    cells: Mapping[str, Mapping[float, tuple[float, float]]]
    source: str  # "make bench at 1a2b3c4, 2026-12-07"

    def at(self, transport: str, loss_pct: float
           ) -> tuple[float, float] | None:
        """The figures at the least measured loss at or above
        `loss_pct` (the worst measured, past the last): a cautious
        reading, never an interpolation."""
        rates = self.cells.get(transport, {})
        above = [rate for rate in rates if rate >= loss_pct]
        if not rates:
            return None
        return rates[min(above) if above else max(rates)]


    def meeting(self, transports: Sequence[str], loss_pct: float,
                target_ms: float) -> list[tuple[float, float, str]]:
        """(audio lost %, p99 ms, transport) of those measured to meet
        the target at this loss, the least audio lost first."""
        found = []
        for name in transports:
            cell = self.at(name, loss_pct)
            if cell is not None and cell[0] <= target_ms:
                p99, lost = cell
                found.append((lost, p99, name))
        return sorted(found)


def lab_figures(results: Mapping[str, object]) -> LabFigures:
    """`bench/results/ch05_rtc.json`'s flat figures, by transport."""
    found: dict[str, dict[float, dict[str, float]]] = {}
    for key, value in results.items():
        match = FIGURE.match(key)
        if match and isinstance(value, int | float):
            measure, transport, rate = match.groups()
            loss = float(rate.replace("_", "."))
            found.setdefault(transport, {}).setdefault(loss, {})[
                measure] = float(value)
    machine = results.get("machine")
    origin = (f"make bench at {machine.get('git_commit', '?')},"
              f" {str(machine.get('recorded_at', '?'))[:10]}"
              if isinstance(machine, dict) else "the lossy-link lab")
    return LabFigures({
        transport: {rate: (cell["p99_ms"], cell.get("audio_lost_pct", 0.0))
                    for rate, cell in rates.items() if "p99_ms" in cell}
        for transport, rates in found.items()}, origin)


def load_lab_figures(path: Path = RESULTS) -> LabFigures | None:
    """The committed figures, or None where no benchmark has run."""
    if not path.is_file():
        return None
    return lab_figures(json.loads(path.read_text(encoding="utf-8")))
