"""The Serve command's settings: flags, variables, and what replicas get.

Parsed in the test's process, without Ray: bad flags stop with status 2
naming the flag; a development key is made once, for every replica;
the pipeline inside a replica listens on loopback ports the system
picks, admits up to the replica's cap and drains as long as `--drain-s`.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ch04_streaming.auth import KEYS_VARIABLE
from ch12_scaling.settings import parse_serve_settings, stream_owners


@pytest.mark.parametrize("flags", [
    ["--router", "random"], ["--replicas", "0"],
    ["--min-replicas", "3", "--max-replicas", "2"],
    ["--min-replicas", "1"], ["--max-streams-per-replica", "0"],
    ["--audio-cost-ms", "0"], ["--audio-cost-ms", "60,x"],
    ["--drain-s", "0"], ["--num-cpus", "-1"],
])
def test_bad_flags_stop_with_status_2(
        flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_serve_settings(flags, env={})
    assert stopped.value.code == 2
    assert flags[0] in capsys.readouterr().err


def test_the_command_stops_on_a_bad_flag_before_starting_ray() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ch12_scaling", "serve", "--router", "x"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--router must be one of gpu-aware" in done.stderr


def test_one_development_key_for_every_replica() -> None:
    settings, dev_key = parse_serve_settings([], env={})
    assert dev_key is not None
    assert settings.pipeline.env[KEYS_VARIABLE] == dev_key
    configured, none = parse_serve_settings(
        [], env={KEYS_VARIABLE: "k1,k2"})
    assert none is None
    assert configured.pipeline.env[KEYS_VARIABLE] == "k1,k2"


def test_replicas_listen_inside_on_ports_the_system_picks() -> None:
    settings, _ = parse_serve_settings(
        ["--max-streams-per-replica", "30", "--drain-s", "45"],
        env={"CH12_PORT": "9012", "CH04_LOAD_S": "3"})
    assert settings.port == 9012
    pipeline = settings.pipeline
    assert (pipeline.host, pipeline.port, pipeline.grpc_port) == (
        "127.0.0.1", 0, 0)
    assert pipeline.max_streams == pipeline.speech.max_streams == 30
    assert pipeline.speech.shutdown_grace_s == 45
    assert pipeline.speech.load_s == 3  # chapter 4's variables hold
    assert not settings.autoscaling
    ranged, _ = parse_serve_settings(
        ["--min-replicas", "1", "--max-replicas", "4"], env={})
    assert ranged.autoscaling
    short, _ = parse_serve_settings(["--min", "2", "--max", "5"], env={})
    assert (short.min_replicas, short.max_replicas) == (2, 5)


def test_a_mixed_fleet_takes_accelerators_in_turn() -> None:
    settings, _ = parse_serve_settings(["--audio-cost-ms", "60,120"],
                                       env={})
    assert [settings.accelerator_of(rank) for rank in range(3)] == [
        60.0, 120.0, 60.0]
    # Busy 75% of the time at most: 0.75 s of device per second.
    assert settings.capacity_of(0) == int(0.75 / 0.060)
    assert settings.capacity_of(1) == int(0.75 / 0.120)
    assert settings.streams_per_replica == settings.capacity_of(1)


def test_regions_take_replicas_in_turn_with_their_round_trips() -> None:
    settings, _ = parse_serve_settings(
        ["--regions", "eu,us", "--region-rtt-ms", "eu=20,us=140",
         "--key-owners", "k=acme-eu"], env={})
    assert [settings.region_of(rank) for rank in range(3)] == [
        "eu", "us", "eu"]
    assert settings.rtt_ms_of("us") == 140.0
    owners = stream_owners(settings.regions, settings.residency,
                           settings.key_owners)
    assert owners is not None and owners.owners == {"k": "acme-eu"}
    single, _ = parse_serve_settings([], env={})
    assert single.region_of(0) == "" and stream_owners(
        single.regions, single.residency, single.key_owners) is None


@pytest.mark.parametrize("flags", [
    ["--regions", "eu,us", "--region-rtt-ms", "eu"],
    ["--regions", "eu,us", "--region-rtt-ms", "asia=30"],
    ["--regions", "eu,us", "--region-rtt-ms", "eu=-1"],
    ["--regions", "eu", "--key-owners", "x"],
    ["--regions", "eu"],  # the residency file also names us
    ["--regions", "eu,us", "--router", "round-robin"],
    ["--regions", "eu,us", "--residency", "/nonexistent.toml"],
])
def test_bad_region_flags_stop_with_status_2(
        flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_serve_settings(flags, env={})
    assert stopped.value.code == 2
    assert "--r" in capsys.readouterr().err
