"""`python -m ch12_scaling plan`: replicas and monthly cost for a peak.

Chapter 12, "Capacity planning for inference workloads". From a peak
of concurrent streams and a p95 target, the measured capacity of one
replica (chapter 6's benchmark, through `replica_capacity`) and
chapter 3's dated price catalogue, prints for each accelerator the
replicas every region needs, the total and its monthly cost, on
demand and with a share on spot, the cheapest marked; `--json` prints
the same as JSON. Exit status 2 is a flag that is wrong in itself (a
peak under 1, a malformed region list or share, shares not summing
to 1, an accelerator the catalogue lacks), named in the message;
status 1 is data that cannot answer: a results file or catalogue
missing or unreadable, or a target tighter than every load measured.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

from ch03_gpu.sizing import CATALOGUE_FILE, CatalogueError, load_catalogue
from ch11_slo.target_cost import RESULTS, shown
from ch12_scaling.plan_report import (
    PlanRequest,
    format_json,
    format_text,
    plan_fleet,
)
from ch12_scaling.replica_capacity import (
    MeasurementError,
    measured_capacity,
)

REGION = re.compile(r"[a-z][a-z0-9-]*")
REDUNDANCY = re.compile(r"n(?:\+(\d+))?")
EXIT_DATA = 1
EPILOG = ("exit status: 0 a plan; 2 a bad flag, named; 1 data that"
          " cannot answer (results or catalogue missing or unreadable, a"
          " target tighter than every load measured).")


def exact(text: str) -> Fraction:
    """A number as an exact fraction: `0.4`, `40e-2` or `2/5`."""
    try:
        return Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number (e.g. 0.4 or 2/5)") from None


def fraction_within(inside: Callable[[Fraction], bool], interval: str
                    ) -> Callable[[str], Fraction]:
    """An argparse type: an exact fraction `inside` an interval."""
    def parse(text: str) -> Fraction:
        value = exact(text)
        if not inside(value):
            raise argparse.ArgumentTypeError(
                f"{text} is outside {interval}")
        return value
    return parse


SHARE = fraction_within(lambda v: 0 < v <= 1, "(0, 1]")
HEADROOM = fraction_within(lambda v: 0 <= v < 1, "[0, 1)")
SPOT_SHARE = fraction_within(lambda v: 0 <= v <= 1, "[0, 1]")


def peak(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of streams") from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{value}: a peak is 1 stream or more")
    return value


def target_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of ms")
    return value


def regions(text: str) -> list[str]:
    """`eu,us`: names of lower-case letters, digits and '-'."""
    names = text.split(",")
    bad = [name for name in names if not REGION.fullmatch(name)]
    if bad:
        raise argparse.ArgumentTypeError(
            f"{bad[0]!r} is not a region name: comma-separated names of"
            " lower-case letters, digits and '-' (e.g. eu,us)")
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names a region twice")
    return names


def region_shares(text: str) -> dict[str, Fraction]:
    """`eu=0.4,us=0.6`: each region's part of the peak."""
    shares: dict[str, Fraction] = {}
    for part in text.split(","):
        name, equals, value = part.partition("=")
        if not equals or not REGION.fullmatch(name):
            raise argparse.ArgumentTypeError(
                f"{part!r} is not region=share (e.g. eu=0.4,us=0.6)")
        if name in shares:
            raise argparse.ArgumentTypeError(f"{name} is given twice")
        shares[name] = SHARE(value)
    return shares


def spares(text: str) -> int:
    """`n+1`: one spare replica in each region; `n`: none."""
    match = REDUNDANCY.fullmatch(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not n or n+K (e.g. n+1)")
    return int(match.group(1) or 0)


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m ch12_scaling plan",
        description="Replicas per region, accelerators and monthly cost"
                    " for a peak of concurrent streams.",
        epilog=EPILOG)
    cli.add_argument("--peak-streams", type=peak, required=True,
                     help="concurrent streams at the peak")
    cli.add_argument("--p95-ms", type=target_ms, default=300.0,
                     help="p95 final latency target (%(default)g)")
    cli.add_argument("--regions", type=regions, required=True,
                     help="regions, comma-separated (e.g. eu,us)")
    cli.add_argument("--region-share", type=region_shares,
                     help="each region's share of the peak, summing to"
                          " 1 (e.g. eu=0.4,us=0.6; default: even)")
    cli.add_argument("--accelerator", default="all",
                     help="one of the catalogue's, or all (default)")
    cli.add_argument("--headroom", type=HEADROOM, default=Fraction(1, 5),
                     help="share of a replica's capacity kept free (0.2)")
    cli.add_argument("--redundancy", type=spares, default=1,
                     help="spare replicas per region: n, n+1 (default)")
    cli.add_argument("--failover", action="store_true",
                     help="size each region to take in a lost region's"
                          " users too")
    cli.add_argument("--spot-share", type=SPOT_SHARE,
                     help="share of the accelerators on spot, 0 to 1")
    cli.add_argument("--results", type=Path, default=RESULTS,
                     help="benchmark results directory (bench/results)")
    cli.add_argument("--catalogue", type=Path, default=CATALOGUE_FILE,
                     help="accelerators and prices (chapter 3's)")
    cli.add_argument("--json", action="store_true",
                     help="print the plan as JSON")
    return cli


def checked_shares(cli: argparse.ArgumentParser,
                   args: argparse.Namespace) -> dict[str, Fraction]:
    """The shares in the order of --regions; even if not given."""
    names: list[str] = args.regions
    if args.failover and len(names) < 2:
        cli.error("--failover: needs two regions or more, one to fail"
                  " and one to take its users")
    given: dict[str, Fraction] | None = args.region_share
    if given is None:
        return {name: Fraction(1, len(names)) for name in names}
    if set(given) != set(names):
        cli.error(f"--region-share: names {', '.join(given)}; --regions"
                  f" names {', '.join(names)}: give a share to each")
    total = sum(given.values(), Fraction(0))
    if total != 1:
        cli.error(f"--region-share: the shares sum to {float(total):g},"
                  " not 1 (write thirds as 1/3)")
    return {name: given[name] for name in names}


def main(argv: Sequence[str]) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    shares = checked_shares(cli, args)
    try:
        catalogue = load_catalogue(args.catalogue)
    except CatalogueError as error:
        print(f"error: --catalogue: {error}", file=sys.stderr)
        return EXIT_DATA
    names = [offer.name for offer in catalogue.accelerators]
    if args.accelerator not in [*names, "all"]:
        cli.error(f"--accelerator: {args.accelerator!r} is not in the"
                  f" catalogue: one of {', '.join(names)}, or all")
    offers = [offer for offer in catalogue.accelerators
              if args.accelerator in (offer.name, "all")]
    try:
        measured = measured_capacity(args.p95_ms, args.results)
    except MeasurementError as error:
        flag = {"results": "--results", "target": "--p95-ms"}
        print(f"error: {flag[error.about]}: {error.problem}",
              file=sys.stderr)
        return EXIT_DATA
    request = PlanRequest(args.peak_streams, args.p95_ms, shares,
                          args.headroom, args.redundancy, args.failover,
                          args.spot_share)
    fleet = plan_fleet(request, measured, catalogue, offers,
                       shown(args.catalogue))
    print(format_json(fleet) if args.json else format_text(fleet), end="")
    if not fleet.plans:
        print("error: no accelerator holds a stream within the target",
              file=sys.stderr)
        return EXIT_DATA
    return 0
