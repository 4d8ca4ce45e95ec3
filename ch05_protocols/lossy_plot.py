"""The lossy-link lab's figure: latency and audio lost against loss.

Chapter 5, "WebTransport: QUIC datagrams, head-of-line blocking". Left,
chunk-to-result latency against the packet-loss rate, one colour per
transport, p99 solid and p50 dashed, on a log scale (a retransmission
costs hundreds of milliseconds, a result on a clean link a few); right,
the share of the audio sent that never reached the recogniser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ch05_protocols.lossy_stats import Cell


def shown(values: Sequence[float | None]) -> list[float]:
    """None (nothing measured) as a gap in the line."""
    return [math.nan if v is None else v for v in values]


def plot(cells: Sequence[Cell], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, (latency, lost) = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(c.transport for c in cells):
        mine = sorted((c for c in cells if c.transport == name),
                      key=lambda c: c.loss_pct)
        rates = [c.loss_pct for c in mine]
        line, = latency.plot(rates, shown([c.p99_ms for c in mine]), "o-",
                             label=f"{name} p99")
        latency.plot(rates, shown([c.p50_ms for c in mine]), "s--",
                     color=line.get_color(), label=f"{name} p50")
        lost.plot(rates, shown([c.audio_lost_pct for c in mine]), "o-",
                  color=line.get_color(), label=name)
    latency.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    latency.yaxis.set_major_formatter(plain)
    latency.yaxis.set_minor_formatter(plain)
    latency.set_xlabel("packets dropped (%)")
    latency.set_ylabel("chunk-to-result latency (ms)")
    latency.legend(fontsize="small")
    lost.set_xlabel("packets dropped (%)")
    lost.set_ylabel("audio lost (% of audio sent)")
    lost.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
