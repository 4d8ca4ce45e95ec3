"""The Serve deployment's settings: flags, `CH12_<NAME>` variables.

Chapter 12, "Horizontal scaling". The fleet's shape (replicas, or a
range the autoscaler moves in), the request router, and the simulated
accelerator each replica gets have a flag and a variable; the pipeline
inside each replica is chapter 6's, set by its own `CH06_<NAME>` and
chapter 4's `CH04_<NAME>` variables, so one engine setting means the
same in every chapter's service. Settings are read once, by the
driver, and handed to every replica: a replica runs in a Ray worker
whose environment is not the shell's.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ch04_streaming.app import dialects
from ch04_streaming.auth import KEYS_VARIABLE, load_api_keys
from ch04_streaming.settings import add_flags, option
from ch06_pipeline.settings import PipelineSettings, parse_pipeline_settings
from ch10_compliance.residency import (
    DEFAULT_RESIDENCY,
    ResidencyError,
    ResidencyPolicy,
    load_residency,
)
from ch12_scaling.stream_owner import (
    KeyOwnersError,
    StreamOwners,
    parse_key_owners,
)

ROUTERS = ("gpu-aware", "power-of-two", "round-robin")


def residency_of(path: str, regions: Sequence[str]) -> ResidencyPolicy:
    """Chapter 10's file; every region it names must have replicas."""
    policy = load_residency(Path(path) if path else DEFAULT_RESIDENCY)
    missing = set(policy.regions) - set(regions) if regions else set()
    if missing:
        raise ResidencyError(
            f"the residency file's regions {', '.join(sorted(missing))}"
            " have no replicas (--regions)")
    return policy


@dataclass(frozen=True)
class ServeSettings:
    host: str = option("127.0.0.1", "address the Serve proxy listens on")
    port: int = option(8012, "the Serve proxy's HTTP and WebSocket port")
    replicas: int = option(2, "replicas, when --min and --max are unset")
    min_replicas: int = option(
        0, "the autoscaler's least replicas (0: a fixed --replicas)")
    max_replicas: int = option(
        0, "the autoscaler's most replicas (0: a fixed --replicas)")
    scale_up_window_s: float = option(
        60.0, "the autoscaler's short window: load above its threshold"
        " this long adds replicas")
    scale_down_window_s: float = option(
        600.0, "the autoscaler's long window: load below its threshold"
        " this long removes one replica")
    scale_look_back_s: float = option(
        30.0, "the span Serve averages the replicas' reports over")
    router: str = option(
        "gpu-aware", f"how a new stream picks a replica: "
        f"{', '.join(ROUTERS)}")
    num_cpus: int = option(
        0, "CPUs the local Ray instance may use (0: all of them)")
    audio_cost_ms: str = option(
        "60", "simulated device time per second of audio decoded; a"
        " list (60,60,120) gives replicas mixed accelerators, in turn."
        " Small ones, so a laptop can fill a replica")
    max_streams_per_replica: int = option(
        24, "streams a replica admits before it answers 503")
    regions: str = option(
        "", "regions the replicas are in, in turn (eu,us); empty: one"
        " region, no residency")
    region_rtt_ms: str = option(
        "", "each region's round trip from the clients' entry point,"
        " injected at its replicas (eu=20,us=140)")
    residency: str = option(
        "", "chapter 10's residency file: where each customer's audio"
        " may be processed (empty: ch10_compliance/residency.toml)")
    key_owners: str = option(
        "", "API keys' owners, as in the residency file: KEY=OWNER,...")
    lab_dir: str = option(
        "", "the lab's directory: each replica's record (<replica>.json)"
        " and, to preempt one, its notice (<replica>); empty: a fresh"
        " temporary one")
    drain_s: float = option(
        30.0, "longest a replica drains on a stop or a notice")
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas > 0

    def accelerator_of(self, rank: int) -> float:
        """Device ms per audio second of the replica of this rank."""
        costs = audio_costs(self.audio_cost_ms)
        return costs[rank % len(costs)]

    def capacity_of(self, rank: int) -> int:
        return capacity_streams(self.accelerator_of(rank))

    def region_of(self, rank: int) -> str:
        names = region_names(self.regions)
        return names[rank % len(names)] if names else ""

    def rtt_ms_of(self, region: str) -> float:
        return region_rtts(self.region_rtt_ms).get(region, 0.0)

    @property
    def streams_per_replica(self) -> int:
        """The autoscaler's capacity: the smallest replica's, so that a
        fleet sized on it is never short."""
        costs = audio_costs(self.audio_cost_ms)
        return min(capacity_streams(cost) for cost in costs)


# The device busy share a replica is sized to: above it, decode requests
# queue behind one another and finals slip (chapter 6's measurement).
BUSY_TARGET = 0.75


def capacity_streams(audio_cost_ms: float) -> int:
    """Streams of continuous speech a device decodes while busy at
    most `BUSY_TARGET` of the time."""
    return max(1, int(BUSY_TARGET * 1000 / audio_cost_ms))


def region_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def region_rtts(text: str) -> dict[str, float]:
    """`eu=20,us=140`: milliseconds by region; `ValueError` if not."""
    rtts = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        region, sep, value = pair.partition("=")
        if not sep or float(value) < 0:
            raise ValueError(f"{pair!r} is not REGION=MILLISECONDS")
        rtts[region.strip()] = float(value)
    return rtts


def audio_costs(text: str) -> list[float]:
    """`60,60,120`: milliseconds, each above 0; `ValueError` if not."""
    costs = [float(part) for part in text.split(",")]
    if not costs or any(not cost > 0 for cost in costs):
        raise ValueError("each cost must be above 0")
    return costs


def parse_serve_settings(argv: Sequence[str] | None = None,
                         env: Mapping[str, str] | None = None
                         ) -> tuple[ServeSettings, str | None]:
    """The settings, and the development key when none was configured:
    made up once here, so every replica accepts the same one."""
    env = dict(os.environ if env is None else env)
    parser = argparse.ArgumentParser(
        prog="python -m ch12_scaling serve",
        description="Chapter 6's pipeline as replicas on Ray Serve.")
    add_flags(parser, ServeSettings, "CH12", env)
    for short, setting in (("--min", "min_replicas"),
                           ("--max", "max_replicas")):
        parser.add_argument(short, dest=setting, type=int,
                            default=argparse.SUPPRESS,
                            help=f"short for --{setting.replace('_', '-')}")
    args = parser.parse_args(argv)
    checks = [
        (args.router in ROUTERS,
         f"--router must be one of {', '.join(ROUTERS)}"),
        (args.replicas >= 1, "--replicas must be 1 or more"),
        (args.min_replicas >= 0 and args.max_replicas >= 0,
         "--min-replicas and --max-replicas must be 0 or more"),
        (args.max_replicas == 0 or args.min_replicas <= args.max_replicas,
         "--min-replicas must not exceed --max-replicas"),
        (args.min_replicas == 0 or args.max_replicas > 0,
         "--min-replicas needs --max-replicas"),
        (args.max_streams_per_replica >= 1,
         "--max-streams-per-replica must be 1 or more"),
        (args.drain_s > 0, "--drain-s must be above 0"),
        (0 < args.scale_up_window_s < args.scale_down_window_s,
         "--scale-up-window-s must be above 0 and below"
         " --scale-down-window-s"),
        (args.scale_look_back_s > 0, "--scale-look-back-s must be above 0"),
        (args.num_cpus >= 0, "--num-cpus must be 0 or more"),
        (not args.regions or args.router == "gpu-aware",
         "--regions needs --router gpu-aware: Serve's own routers know"
         " no regions"),
    ]
    for holds, message in checks:
        if not holds:
            parser.error(message)
    try:
        audio_costs(args.audio_cost_ms)
    except ValueError as error:
        parser.error(f"--audio-cost-ms: {error} (milliseconds, comma"
                     " separated)")
    try:
        rtts = region_rtts(args.region_rtt_ms)
    except ValueError as error:
        parser.error(f"--region-rtt-ms: {error}")
    unknown = set(rtts) - set(region_names(args.regions))
    if unknown:
        parser.error(f"--region-rtt-ms names {', '.join(sorted(unknown))},"
                     " not in --regions")
    try:
        residency_of(args.residency, region_names(args.regions))
        parse_key_owners(args.key_owners)
    except (ResidencyError, KeyOwnersError) as error:
        parser.error(f"--residency/--key-owners: {error}")
    _, dev_key = load_api_keys(env)
    if dev_key:
        env[KEYS_VARIABLE] = dev_key
    pipeline = parse_pipeline_settings([], env)
    # The Serve proxy is the only listener clients see: inside a
    # replica, the pipeline listens on ports the system picks.
    pipeline = replace(
        pipeline, host="127.0.0.1", port=0, grpc_port=0,
        max_streams=args.max_streams_per_replica,
        speech=replace(pipeline.speech, host="127.0.0.1", port=0,
                       max_streams=args.max_streams_per_replica,
                       shutdown_grace_s=args.drain_s))
    return ServeSettings(**vars(args), pipeline=pipeline), dev_key


def stream_owners(regions: str, residency: str, key_owners: str
                  ) -> StreamOwners | None:
    """Who owns each stream, and where its audio may go, from the
    `--regions`, `--residency` and `--key-owners` values; None with one
    region, where there is no boundary to keep."""
    names = region_names(regions)
    if not names:
        return None
    return StreamOwners(residency_of(residency, names),
                        parse_key_owners(key_owners), dialects())
