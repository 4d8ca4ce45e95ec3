"""Capacity planning: replicas per region, accelerators, monthly cost."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from ch03_gpu.sizing import load_catalogue
from ch12_scaling.capacity import (
    HOURS_PER_MONTH,
    capacity_plan,
    monthly_cost,
    spot_count,
)
from ch12_scaling.plan import main
from ch12_scaling.replica_capacity import (
    MeasurementError,
    measured_capacity,
    streams_per_replica,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# Two loads measured, then the benchmark's search at 300 ms.
RESULTS = {
    "p95_final_ms_batched_at_100": 150.0,
    "p95_final_ms_batched_at_200": 250.0,
    "capacity_batching_tuned": 240,
    "machine": {"cpu": "Test CPU", "cores": 2, "git_commit": "abc1234",
                "recorded_at": "2026-01-02T03:04:05+00:00"},
}
SEARCHED = 240
# REF is the reference; HALF computes half as fast, for less; TINY's
# memory does not even hold the weights (207 MB in bf16); SLOW, a
# thousandth of REF, holds under one of its 240 streams.
CATALOGUE = """
reference = "REF"

[[accelerators]]
name = "REF"
memory_gib = 80
tflops = { bf16 = 100.0 }
instance = "ref.xlarge"
on_demand_per_hour = 4.0
spot_discount = 0.5
prices_read = "2026-01"
source = "test list"

[[accelerators]]
name = "HALF"
memory_gib = 80
tflops = { bf16 = 50.0 }
instance = "half.xlarge"
on_demand_per_hour = 1.5
spot_discount = 0.6
prices_read = "2026-02"
source = "test list"

[[accelerators]]
name = "TINY"
memory_gib = 0.1
tflops = { bf16 = 100.0 }
instance = "tiny.xlarge"
on_demand_per_hour = 0.1
spot_discount = 0.6
prices_read = "2026-03"
source = "test list"

[[accelerators]]
name = "SLOW"
memory_gib = 80
tflops = { bf16 = 0.1 }
instance = "slow.xlarge"
on_demand_per_hour = 0.1
spot_discount = 0.6
prices_read = "2026-03"
source = "test list"
"""
PRICES = {"REF": 4.0, "HALF": 1.5}
SPEED = {"REF": 1.0, "HALF": 0.5}


@pytest.fixture
def data(tmp_path: Path) -> list[str]:
    """Flags pointing at test results and a test catalogue."""
    (tmp_path / "ch06_pipeline.json").write_text(json.dumps(RESULTS))
    (tmp_path / "catalogue.toml").write_text(CATALOGUE)
    return ["--results", str(tmp_path),
            "--catalogue", str(tmp_path / "catalogue.toml")]


def plan(flags: list[str], capsys: pytest.CaptureFixture[str]
         ) -> tuple[int, str, str]:
    try:
        status = main(flags)
    except SystemExit as stop:
        status = int(stop.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


# The arithmetic


def test_each_region_gets_its_share_on_replicas_kept_below_capacity(
) -> None:
    peak, per_replica, headroom = 1000, 100, Fraction(1, 5)
    shares = {"eu": Fraction(2, 5), "us": Fraction(3, 5)}
    usable = per_replica * (1 - headroom)  # 80 streams a replica
    replicas = capacity_plan(peak, per_replica, shares, headroom, 1)
    # eu: 400 / 80 = 5 replicas; us: 600 / 80 = 7.5, so 8; one spare
    assert replicas == {"eu": math.ceil(peak * shares["eu"] / usable) + 1,
                        "us": math.ceil(peak * shares["us"] / usable) + 1}
    assert replicas == {"eu": 6, "us": 9}
    without_spares = capacity_plan(peak, per_replica, shares, headroom, 0)
    assert {r: n + 1 for r, n in without_spares.items()} == replicas


def test_failover_sizes_each_region_for_the_largest_other_too() -> None:
    peak, per_replica = 1000, 100
    shares = {"eu": Fraction(1, 2), "us": Fraction(3, 10),
              "ap": Fraction(1, 5)}
    replicas = capacity_plan(peak, per_replica, shares, Fraction(0), 0,
                             failover=True)
    # eu takes in us (the larger of the others), us and ap take in eu
    taken = {"eu": shares["us"], "us": shares["eu"], "ap": shares["eu"]}
    assert replicas == {
        region: math.ceil(peak * (shares[region] + taken[region])
                          / per_replica) for region in shares}
    alone = capacity_plan(peak, per_replica, shares, Fraction(0), 0)
    assert all(replicas[r] > alone[r] for r in shares)


def test_exact_shares_make_whole_replicas_whole() -> None:
    # 60% of 105 streams is 63; 90 streams less 30% headroom is 63
    shares = {"eu": Fraction("0.4"), "us": Fraction("0.6")}
    replicas = capacity_plan(105, 90, shares, Fraction("0.3"), 0)
    assert replicas["us"] == 1
    # what floating point would have made of it
    assert math.ceil(105 * 0.6 / (90 * (1 - 0.3))) == 2


def test_a_month_costs_730_hours_with_spot_rounded_down() -> None:
    assert spot_count(7, Fraction(1, 2)) == 3  # 3.5: 4 stay on demand
    cost = monthly_cost(7, 4.0, 2.0, Fraction(1, 2))
    assert cost == pytest.approx(HOURS_PER_MONTH * (4 * 4.0 + 3 * 2.0))
    assert monthly_cost(7, 4.0, 2.0) == pytest.approx(
        HOURS_PER_MONTH * 7 * 4.0)


# The measured capacity


def test_the_benchmarks_search_answers_its_own_target(
        data: list[str]) -> None:
    found = measured_capacity(300.0, Path(data[1]))
    assert (found.streams, found.at_least) == (SEARCHED, False)
    assert "abc1234" in found.provenance


def test_a_tighter_target_is_interpolated_between_measured_loads(
        data: list[str]) -> None:
    # 200 ms lies halfway from 150 ms (100 streams) to 250 ms (200)
    found = measured_capacity(200.0, Path(data[1]))
    assert found.streams == 100 + (200 - 100) * (200 - 150) // (250 - 150)
    # within 275 ms: 200 streams were; the search says nothing of 275
    assert measured_capacity(275.0, Path(data[1])).at_least


def test_a_target_below_every_load_measured_is_refused(
        data: list[str]) -> None:
    with pytest.raises(MeasurementError) as refused:
        measured_capacity(100.0, Path(data[1]))
    assert refused.value.about == "target"
    assert "100 streams took 150 ms" in refused.value.problem


def test_other_accelerators_scale_by_throughput_and_memory(
        data: list[str]) -> None:
    catalogue = load_catalogue(Path(data[3]))
    per = {o.name: streams_per_replica(SEARCHED, catalogue, o)
           for o in catalogue.accelerators}
    assert per == {"REF": SEARCHED, "HALF": SEARCHED // 2, "TINY": 0,
                   "SLOW": 0}


# The command


def expected_plan(peak: int, name: str, shares: dict[str, Fraction],
                  failover: bool = False) -> dict[str, int]:
    """By hand: 20% headroom, one spare in each region."""
    usable = math.floor(SEARCHED * SPEED[name]) * Fraction(4, 5)
    out = {}
    for region, share in shares.items():
        other = max(s for r, s in shares.items() if r != region)
        load = peak * (share + other if failover else share)
        out[region] = math.ceil(load / usable) + 1
    return out


def test_the_table_has_a_row_per_accelerator_the_cheapest_marked(
        data: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = plan(["--peak-streams", "1000", "--regions",
                           "eu,us", "--region-share", "eu=0.4,us=0.6",
                           *data], capsys)
    assert status == 0
    shares = {"eu": Fraction(2, 5), "us": Fraction(3, 5)}
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0] in PRICES}
    costs = {}
    for name, row in rows.items():
        replicas = expected_plan(1000, name, shares)
        total = sum(replicas.values())
        costs[name] = total * PRICES[name] * HOURS_PER_MONTH
        assert row[2:6] == [str(replicas["eu"]), str(replicas["us"]),
                            str(total), f"${costs[name]:,.0f}"]
    cheapest = min(costs, key=costs.__getitem__)
    assert "* cheapest" in " ".join(rows[cheapest])
    assert sum("* cheapest" in line for line in out.splitlines()) == 1
    assert "2026-01" in " ".join(rows["REF"])
    assert "TINY: its 0.1 GiB hold no stream's state" in out
    assert "SLOW: scaled by throughput" in out
    assert "abc1234" in out


def test_json_says_the_same_with_spot_and_failover(
        data: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = plan(["--peak-streams", "500", "--regions", "eu,us",
                           "--failover", "--spot-share", "0.5", "--json",
                           *data], capsys)
    assert status == 0
    document = json.loads(out)
    shares = {"eu": Fraction(1, 2), "us": Fraction(1, 2)}
    spot_prices = {"REF": 4.0 * 0.5, "HALF": 1.5 * 0.4}
    quoted = {}
    for row in document["accelerators"]:
        name = row["name"]
        replicas = expected_plan(500, name, shares, failover=True)
        alone = expected_plan(500, name, shares)
        total, before = sum(replicas.values()), sum(alone.values())
        on_spot = total // 2

        def month(n: int, spot: int, name: str = name) -> float:
            return HOURS_PER_MONTH * ((n - spot) * PRICES[name]
                                      + spot * spot_prices[name])
        quoted[name] = month(total, on_spot)
        assert row["replicas"] == replicas
        assert row["total"] == total
        assert row["monthly_on_demand"] == pytest.approx(month(total, 0))
        assert row["monthly_with_spot"] == pytest.approx(quoted[name])
        assert row["failover_adds"]["accelerators"] == total - before
        assert row["failover_adds"]["monthly"] == pytest.approx(
            quoted[name] - month(before, before // 2))
    assert document["cheapest"] == min(quoted, key=quoted.__getitem__)
    assert document["capacity"]["streams"] == SEARCHED
    assert [u["name"] for u in document["unfit"]] == ["TINY", "SLOW"]


def test_one_accelerator_and_a_tighter_target(
        data: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = plan(["--peak-streams", "1000", "--regions", "eu",
                           "--accelerator", "REF", "--p95-ms", "200",
                           "--headroom", "0", "--redundancy", "n",
                           "--json", *data], capsys)
    assert status == 0
    (row,) = json.loads(out)["accelerators"]
    assert row["streams_per_replica"] == 150  # interpolated, as above
    assert row["replicas"] == {"eu": math.ceil(1000 / 150)}


BAD_FLAGS = [
    (["--peak-streams", "0"], "--peak-streams"),
    (["--peak-streams", "-5"], "--peak-streams"),
    (["--regions", "eu;us"], "--regions"),
    (["--regions", "eu,eu"], "--regions"),
    (["--region-share", "eu:0.5,us=0.5"], "--region-share"),
    (["--region-share", "eu=0.5,ap=0.5"], "--region-share"),
    (["--region-share", "eu=0.4,us=0.5"], "--region-share"),
    (["--region-share", "eu=half,us=0.5"], "--region-share"),
    (["--accelerator", "B200"], "--accelerator"),
    (["--headroom", "1"], "--headroom"),
    (["--redundancy", "2n"], "--redundancy"),
    (["--spot-share", "1.5"], "--spot-share"),
    (["--p95-ms", "0"], "--p95-ms"),
    (["--regions", "eu", "--failover"], "--failover"),
]


@pytest.mark.parametrize(("flags", "named"), BAD_FLAGS)
def test_a_bad_flag_exits_2_naming_it(
        flags: list[str], named: str, data: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    base = {"--peak-streams": "100", "--regions": "eu,us"}
    given = dict(zip(flags[::2], flags[1::2], strict=False))
    argv = [word for flag, value in base.items() if flag not in given
            for word in (flag, value)]
    status, out, err = plan([*argv, *flags, *data], capsys)
    assert status == 2
    assert named in err
    assert out == ""


def test_a_target_below_every_load_exits_1(
        data: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = plan(["--peak-streams", "100", "--regions", "eu",
                           "--p95-ms", "100", *data], capsys)
    assert status == 1
    assert "--p95-ms" in err and "tighter than every load" in err


def test_missing_data_exits_1(
        data: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    flags = ["--peak-streams", "100", "--regions", "eu"]
    status, _, err = plan([*flags, *data, "--results", str(empty)],
                          capsys)
    assert (status, "--results" in err) == (1, True)
    assert "ch06_pipeline.json" in err
    (empty / "ch06_pipeline.json").write_text("{}")
    status, _, err = plan([*flags, *data, "--results", str(empty)],
                          capsys)
    assert (status, "capacity_batching_tuned" in err) == (1, True)
    status, _, err = plan([*flags, "--catalogue", str(empty / "no.toml")],
                          capsys)
    assert (status, "--catalogue" in err) == (1, True)


def test_the_command_runs_on_the_repositorys_own_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ch12_scaling", "plan", "--peak-streams",
         "1000", "--regions", "eu,us", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        check=False)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["cheapest"] in {a["name"]
                                    for a in document["accelerators"]}
