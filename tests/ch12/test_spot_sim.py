"""`spot-sim`, the drain it relies on, and the price file it reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ch12_scaling.gpu_prices import (
    PRICES,
    PriceFileError,
    load_prices,
)
from ch12_scaling.preemption import (
    DRAIN_MARGIN_S,
    MAX_DRAIN_S,
    NOTICE_S,
    drain_plan,
)
from ch12_scaling.spot_sim import (
    RECONNECT_S,
    SpotDay,
    SpotFleet,
    SpotSettings,
    main,
    preempt,
    spot_figures,
)

GOOD_ENTRY = """
[notice]
aws = 120.0
aws_source = "https://example.com/aws"
date_read = "2026-12-01"

[[price]]
provider = "aws"
gpu = "L4"
instance = "g6.xlarge"
region = "us-east-1"
on_demand_per_gpu_hour = 0.80
spot_per_gpu_hour = 0.40
date_read = "2026-12-01"
on_demand_source = "https://example.com/od"
spot_source = "https://example.com/spot"
estimated = []
"""


def figure(found: dict[str, object], key: str) -> float:
    value = found[key]
    assert isinstance(value, int | float), key
    return float(value)


def test_every_price_is_dated_and_sourced() -> None:
    text = PRICES.read_text(encoding="utf-8")
    book = load_prices()
    assert len(book.prices) == text.count("[[price]]")
    for price in book.prices:
        assert price.on_demand_source.startswith("https://")
        assert price.spot_source.startswith("https://")
        assert price.date_read.year >= 2026
        assert set(price.estimated) <= {"on_demand", "spot"}
        assert 0 < price.spot_discount < 1


def test_the_file_covers_four_gpus_on_two_providers() -> None:
    book = load_prices()
    for provider in ("aws", "gcp"):
        assert {"T4", "L4", "A100", "H100"} <= set(book.gpus(provider))


def test_the_notice_model_agrees_with_the_price_file() -> None:
    book = load_prices()
    assert book.notice_s == NOTICE_S == {"aws": 120.0, "gcp": 30.0}
    assert all(url.startswith("https://")
               for url in book.notice_sources.values())


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace('date_read = "2026-12-01"\non_demand',
                         'on_demand'), "date_read"),
    (lambda t: t.replace('"2026-12-01"\non_demand', '"1 Dec"\non_demand'),
     "YYYY-MM-DD"),
    (lambda t: t.replace("https://example.com/spot", "a blog"),
     "spot_source"),
    (lambda t: t.replace("0.40", "0.90"), "spot must cost less"),
    (lambda t: t.replace("0.80", "-1"), "on_demand_per_gpu_hour"),
    (lambda t: t.replace("estimated = []", 'estimated = ["all"]'),
     "estimated"),
    (lambda t: t.replace("[notice]", "[notes]"), "notice"),
    (lambda t: t + "[[[", "invalid TOML"),
])
def test_a_malformed_price_file_is_refused_with_the_field(
        tmp_path: Path, edit: object, message: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(edit(GOOD_ENTRY), encoding="utf-8")  # type: ignore[operator]
    with pytest.raises(PriceFileError, match=message):
        load_prices(path)
    path.write_text(GOOD_ENTRY, encoding="utf-8")
    assert load_prices(path).find("aws", "L4").spot_discount == 0.5


def test_streams_ending_before_the_deadline_finish_the_rest_reconnect(
        ) -> None:
    deadline = 120.0 - DRAIN_MARGIN_S
    plan = drain_plan([10.0, 100.0, deadline - 1, deadline + 1, 900.0],
                      notice_s=120.0)
    assert plan.deadline_s == deadline
    assert (plan.finishing, plan.reconnecting) == (3, 2)
    short = drain_plan([10.0, 30.0 - DRAIN_MARGIN_S + 1], notice_s=30.0)
    assert (short.finishing, short.reconnecting) == (1, 1)


def test_no_drain_outlasts_the_maximum_whatever_the_notice() -> None:
    plan = drain_plan([200.0], notice_s=600.0)
    assert plan.deadline_s == MAX_DRAIN_S - DRAIN_MARGIN_S
    assert plan.reconnecting == 1
    with pytest.raises(ValueError, match="negative"):
        drain_plan([], notice_s=-1.0)


def test_cut_streams_land_on_a_warm_replica_after_a_reconnect() -> None:
    fleet, day = SpotFleet(spot_share=0.5, cold_start_min=4.0), SpotDay()
    fleet.add(0, warm=True)
    fleet.add(0, warm=True)
    spot = next(r for r in fleet.replicas if r.spot)
    preempt(fleet, spot, minute=10, per_ready=100, notice_s=30.0,
            mean_stream_s=300.0, rng=np.random.default_rng(0), day=day)
    assert day.preemptions == 1 and day.streams_cut > 50
    assert day.gaps_s == [RECONNECT_S] * day.streams_cut
    assert len(fleet.serving()) == 2  # the replacement, already asked


def test_with_nobody_warm_cut_streams_wait_for_the_replacement() -> None:
    fleet, day = SpotFleet(spot_share=1.0, cold_start_min=4.0), SpotDay()
    fleet.add(0, warm=True)
    only = fleet.replicas[0]
    preempt(fleet, only, minute=10, per_ready=100, notice_s=30.0,
            mean_stream_s=300.0, rng=np.random.default_rng(0), day=day)
    # Cut at the deadline (the notice less the margin); the replacement
    # warms 4 min after the notice.
    wait_s = (4.0 - (30.0 - DRAIN_MARGIN_S) / 60.0) * 60.0 + RECONNECT_S
    assert day.gaps_s == pytest.approx([wait_s] * day.streams_cut)


@pytest.mark.parametrize("provider", ["aws", "gcp"])
def test_the_saving_stays_within_the_price_files_discount(
        provider: str) -> None:
    discount = 100 * load_prices().find(provider, "L4").spot_discount
    low, mid, high = (
        figure(spot_figures(SpotSettings(provider=provider,
                                         spot_share=share)),
               "spot_savings_pct") for share in (0.25, 0.5, 1.0))
    assert 0 < low < mid < high <= discount


def test_all_on_demand_saves_nothing_and_loses_no_stream() -> None:
    found = spot_figures(SpotSettings(spot_share=0.0))
    assert found["spot_savings_pct"] == 0
    assert found["spot_preemptions"] == found["spot_streams_cut"] == 0


def test_a_shorter_notice_cuts_more_streams() -> None:
    aws = spot_figures(SpotSettings(provider="aws", spot_share=1.0))
    gcp = spot_figures(SpotSettings(provider="gcp", spot_share=1.0))
    assert figure(aws, "spot_preemptions") == figure(
        gcp, "spot_preemptions") > 0
    assert figure(gcp, "spot_streams_cut") > figure(
        aws, "spot_streams_cut") > 0


def test_more_preemptions_cost_more_streams() -> None:
    calm = spot_figures(SpotSettings(preemptions_per_hour=0.005))
    rough = spot_figures(SpotSettings(preemptions_per_hour=0.2))
    assert figure(rough, "spot_streams_cut") > figure(
        calm, "spot_streams_cut")
    assert figure(rough, "spot_reconnect_gap_s_total") > 0


def test_the_same_seed_gives_the_same_day() -> None:
    assert spot_figures(SpotSettings(seed=5)) == spot_figures(
        SpotSettings(seed=5))


def test_the_command_prints_and_writes_the_figures(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "spot.json"
    assert main(["--provider", "gcp", "--gpu", "H100", "--spot-share",
                 "0.5", "--seed", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"Saving: [\d.]+% of the on-demand day", printed)
    assert all(len(line) <= 79 for line in printed.splitlines())
    written = json.loads(out.read_text(encoding="utf-8"))
    for key in ("spot_savings_pct", "spot_streams_cut",
                "spot_violation_minutes", "spot_reconnect_gap_s_total"):
        assert key in written, key


@pytest.mark.parametrize(("flags", "message"), [
    (["--spot-share", "1.5"], "--spot-share"),
    (["--spot-share", "half"], "--spot-share"),
    (["--provider", "azure"], "--provider"),
    (["--gpu", "V100"], "--gpu: no price for 'V100' on aws"),
    (["--preemptions-per-hour", "-1"], "--preemptions-per-hour"),
    (["--preemptions-per-hour", "often"], "--preemptions-per-hour"),
    (["--mean-stream-s", "0"], "--mean-stream-s"),
])
def test_bad_flags_exit_2_naming_the_flag(
        flags: list[str], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(flags)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_price_file_exits_2_naming_the_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "prices.toml"
    path.write_text("[[price]]\nprovider = 'aws'\n", encoding="utf-8")
    with pytest.raises(SystemExit) as stopped:
        main(["--prices", str(path)])
    assert stopped.value.code == 2
    assert "--prices:" in capsys.readouterr().err


def test_missing_results_exit_2_naming_the_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--results", str(tmp_path / "none.json")]) == 2
    assert capsys.readouterr().err.startswith("--results: cannot read")
