"""`python -m examples.routing_comparison`: one router, a short load.

The command starts chapter 12's fleet on a mixed fleet, offers it the
seeded skewed load, and prints a row per router with the streams it
placed on each replica; `--json` writes the same. Bad routers stop it
with status 2. The full comparison of the three is `make bench`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from examples.routing_comparison import QUICK, SkewedLoad, main


def test_a_load_is_seeded_and_skewed() -> None:
    schedule = SkewedLoad().schedule()
    assert schedule == SkewedLoad().schedule()
    assert schedule != SkewedLoad(seed=13).schedule()
    durations = {d for _, d in schedule}
    assert durations == {SkewedLoad.long_s, SkewedLoad.short_s}
    starts = [s for s, _ in schedule]
    assert starts == sorted(starts) and max(starts) <= SkewedLoad.window_s
    assert QUICK.mean_concurrency < SkewedLoad().mean_concurrency


@pytest.mark.timeout(240)
def test_the_command_compares_a_router_on_a_short_load(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "routing.json"
    assert main(["--quick", "--routers", "gpu-aware", "--audio-cost-ms",
                 "60,120", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "on 2 replicas (60,120 ms" in printed
    (row,) = json.loads(out.read_text())
    assert row["router"] == "gpu-aware"
    assert row["streams"] == QUICK.arrivals
    assert row["failed"] == 0
    assert row["final_p95_ms"] is not None
    assert len(row["streams_by_replica"]) == 2
    assert f"gpu-aware  {QUICK.arrivals}" in printed


def test_an_unknown_router_stops_with_status_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--routers", "gpu-aware,random"])
    assert stopped.value.code == 2
    assert "unknown random" in capsys.readouterr().err
