"""The decision framework, checked against the lossy-link lab's figures.

Chapter 5, "Decision framework" and "WebTransport: QUIC datagrams,
head-of-line blocking". `choose_protocol` decides from what a client
is; this module asks whether the pick meets the latency target on the
network the client expects, using what `python -m ch05_protocols.lossy`
measured there (`make bench` keeps it in `bench/results/ch05_rtc.json`):
each transport's p99 chunk-to-result latency and the audio it lost at
0, 1, 2 and 5 % packet loss. A TCP transport that misses the target at
that loss gives way to the measured transport that meets it and loses
the least audio; the reasons quote the figures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ch05_protocols.choose import (
    Client,
    Constraints,
    Protocol,
    Recommendation,
    choose_protocol,
    why_not,
)

RESULTS = Path(__file__).resolve().parent.parent / (
    "bench/results/ch05_rtc.json")
FIGURE = re.compile(r"^(p99_ms|audio_lost_pct)_(\w+?)_at_(\d+(?:_\d+)?)pct$")
# The lab's transports, and the protocol each one is.
LAB_PROTOCOLS = {
    "websocket": Protocol.WEBSOCKET, "grpc": Protocol.GRPC,
    "webrtc": Protocol.WEBRTC, "wt_datagrams": Protocol.WEBTRANSPORT,
    "wt_streams": Protocol.WEBTRANSPORT,
}
LAB_NAMES = {Protocol.WEBSOCKET: "websocket", Protocol.GRPC: "grpc"}
LABELS = {"websocket": "WebSocket", "grpc": "gRPC", "webrtc": "WebRTC",
          "wt_datagrams": "WebTransport datagrams",
          "wt_streams": "WebTransport streams"}


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


def candidates(c: Constraints) -> tuple[str, ...]:
    """What may replace a TCP transport for this client: a browser
    that must work in Safari keeps to WebRTC (see `why_not`)."""
    if c.client is Client.BROWSER and c.safari:
        return ("webrtc",)
    return ("webrtc", "wt_datagrams", "wt_streams")


# --8<-- [start:choose_measured]
def choose_measured(c: Constraints, lab: LabFigures) -> Recommendation:
    """The tree's pick, kept if its measured p99 at the client's loss
    meets the target; else the transport measured to meet it that
    lost the least audio."""
    first = choose_protocol(c)
    name = LAB_NAMES.get(first.protocol, "")
    if c.loss_pct is None or (measured := lab.at(name, c.loss_pct)) is None:
        return first  # no loss given, or not a transport the lab ran
    loss, (p99, _) = f"{c.loss_pct:g}% loss", measured
    if p99 <= c.latency_ms:
        return replace(first, reasons=(*first.reasons, (
            f"measured at {loss}: p99 {p99:.0f} ms ({lab.source})")))
    fits = lab.meeting(candidates(c), c.loss_pct, c.latency_ms)
    if not fits:
        return replace(first, reasons=(*first.reasons, (
            f"measured at {loss}: p99 {p99:.0f} ms, over {c.latency_ms}"
            f" ms, and no transport measured meets it ({lab.source})")))
    lost, best_p99, best = fits[0]
    pick = LAB_PROTOCOLS[best]
    return Recommendation(pick, (
        f"measured at {loss}: {LABELS[name]}'s p99 is {p99:.0f} ms, over"
        f" {c.latency_ms} ms, as TCP waits to retransmit a lost packet",
        f"{LABELS[best]}: p99 {best_p99:.0f} ms, {lost:.1f}% of the"
        f" audio lost ({lab.source})"),
        tuple((p, why_not(p, c, pick)) for p in Protocol if p is not pick))
# --8<-- [end:choose_measured]
