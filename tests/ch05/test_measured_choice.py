"""The decision framework against the lossy-link lab's figures.

The figures here are made up, in the shape `make bench` writes, so each
branch can be reached: a TCP pick within its target is kept and says
so; one over it gives way to the transport measured to meet it that
lost the least audio; with none that does, the pick stays and says
that too. The committed figures, when a benchmark has run, are read the
same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ch05_protocols.choose import (
    Client,
    Constraints,
    Protocol,
    choose_measured,
    main,
)
from ch05_protocols.lab_figures import (
    RESULTS,
    LabFigures,
    lab_figures,
    load_lab_figures,
)

RESULTS_FILE: dict[str, dict[int, tuple[float, float]]] = {
    # transport -> loss % -> (p99 ms, audio lost %)
    "websocket": {0: (40, 0), 1: (230, 0), 2: (420, 0), 5: (900, 0)},
    "grpc": {0: (45, 0), 1: (240, 0), 2: (450, 0), 5: (950, 0)},
    "webrtc": {0: (60, 0), 1: (70, 1.1), 2: (80, 2.3), 5: (90, 5.2)},
    "wt_datagrams": {0: (30, 0), 1: (35, 0.9), 2: (40, 2.0), 5: (50, 4.9)},
    "wt_streams": {0: (30, 0), 1: (120, 0), 2: (250, 0), 5: (600, 0)},
}


def results() -> dict[str, object]:
    flat: dict[str, object] = {"machine": {
        "git_commit": "abc1234", "recorded_at": "2026-12-07T02:00:00"}}
    for name, rates in RESULTS_FILE.items():
        for rate, (p99, lost) in rates.items():
            flat[f"p99_ms_{name}_at_{rate}pct"] = p99
            flat[f"audio_lost_pct_{name}_at_{rate}pct"] = lost
            flat[f"p50_ms_{name}_at_{rate}pct"] = p99 / 2
    return flat


LAB = lab_figures(results())


def test_the_flat_figures_are_read_by_transport_and_rate() -> None:
    assert LAB.at("wt_datagrams", 2) == (40, 2.0)
    assert LAB.at("websocket", 1.5) == (420, 0)  # the next rate up
    assert LAB.at("websocket", 9) == (900, 0)  # the worst measured
    assert LAB.at("sctp", 1) is None
    assert LAB.source == "make bench at abc1234, 2026-12-07"


def test_a_pick_within_its_target_is_kept_with_its_figure() -> None:
    chosen = choose_measured(Constraints(Client.SERVER, 300, loss_pct=1),
                             LAB)
    assert chosen.protocol is Protocol.WEBSOCKET
    assert chosen.reasons[-1] == ("measured at 1% loss: p99 230 ms"
                                  " (make bench at abc1234, 2026-12-07)")


def test_tcp_over_its_target_gives_way_to_the_least_audio_lost() -> None:
    chosen = choose_measured(Constraints(Client.SERVER, 300, loss_pct=2),
                             LAB)
    # Three meet 300 ms at 2%; WebTransport's streams lost no audio.
    assert chosen.protocol is Protocol.WEBTRANSPORT
    assert "WebSocket's p99 is 420 ms, over 300 ms" in chosen.reasons[0]
    assert chosen.reasons[1].startswith(
        "WebTransport streams: p99 250 ms, 0.0% of the audio lost")
    losers = dict(chosen.not_chosen)
    assert "retransmissions" in losers[Protocol.WEBSOCKET]
    # At 200 ms the streams miss too: of the two left, datagrams lost
    # less audio than WebRTC.
    tighter = choose_measured(Constraints(Client.SERVER, 200, loss_pct=2),
                              LAB)
    assert tighter.reasons[1].startswith(
        "WebTransport datagrams: p99 40 ms, 2.0% of the audio lost")


def test_a_browser_that_must_run_in_safari_keeps_to_webrtc() -> None:
    chosen = choose_measured(Constraints(Client.BROWSER, 300, safari=True,
                                         loss_pct=2), LAB)
    assert chosen.protocol is Protocol.WEBRTC
    assert chosen.reasons[1].startswith("WebRTC: p99 80 ms")


def test_when_nothing_measured_meets_the_target_the_pick_says_so() -> None:
    chosen = choose_measured(Constraints(Client.SERVER, 20, loss_pct=5),
                             LAB)
    assert chosen.protocol is Protocol.WEBSOCKET
    assert "no transport measured meets it" in chosen.reasons[-1]


def test_without_a_loss_or_a_lab_transport_the_tree_decides() -> None:
    lossless = Constraints(Client.SERVER, 300)
    assert choose_measured(lossless, LAB).reasons[-1].startswith("TCP's")
    device = Constraints(Client.MOBILE, 300, lossy_network=True,
                         loss_pct=5)
    assert choose_measured(device, LAB).protocol is Protocol.WEBRTC
    empty = LabFigures({}, "nothing")
    assert choose_measured(Constraints(Client.SERVER, 300, loss_pct=5),
                           empty).protocol is Protocol.WEBSOCKET


def test_the_command_reads_the_lab_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    figures = tmp_path / "ch05_rtc.json"
    figures.write_text(json.dumps(results()))
    assert main(["--client", "server", "--loss-pct", "5", "--latency-ms",
                 "100", "--measured", str(figures)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "use WebTransport"
    assert out[1].startswith("  because measured at 5% loss: WebSocket's")


def test_without_figures_the_command_says_so_and_decides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--client", "server", "--loss-pct", "5", "--measured",
                 str(tmp_path / "none.json")]) == 0
    captured = capsys.readouterr()
    assert "run `make bench`" in captured.err
    assert captured.out.startswith("use WebSocket")


def test_a_loss_outside_0_to_100_stops_with_status_2() -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--client", "server", "--loss-pct", "120"])
    assert stopped.value.code == 2


@pytest.mark.skipif(not RESULTS.is_file(),
                    reason="no committed lab figures yet")
def test_the_committed_figures_cover_every_transport_and_rate() -> None:
    lab = load_lab_figures()
    assert lab is not None
    assert set(lab.cells) == set(RESULTS_FILE)
    for rates in lab.cells.values():
        assert set(rates) == {0.0, 1.0, 2.0, 5.0}


def test_the_module_run_as_a_command_reads_its_own_types(
    tmp_path: Path,
) -> None:
    """`python -m ch05_protocols.choose`, as a reader runs it, reads
    the figures: a Safari browser keeps to WebRTC."""
    figures = tmp_path / "ch05_rtc.json"
    figures.write_text(json.dumps(results()))
    done = subprocess.run(
        [sys.executable, "-m", "ch05_protocols.choose", "--client",
         "browser", "--safari", "--loss-pct", "2", "--measured",
         str(figures)], capture_output=True, text=True, timeout=60,
        check=True)
    assert done.stdout.splitlines()[0] == "use WebRTC"
