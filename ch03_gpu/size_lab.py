"""`python -m ch03_gpu size`: the accelerators that serve a load within
a latency budget, with their count and cost per audio hour.

Chapter 3, "Right-sizing GPU instances". Prints every accelerator of
the catalogue that meets the budget, cheapest first, on demand and on
spot, then the cheapest choice in each number format, since
quantization is a cost lever. An impossible budget gets a plain answer:
no accelerator meets it, and why.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from ch03_gpu.profiles import PROFILE, DeviceProfile
from ch03_gpu.sizing import (
    CATALOGUE_FILE,
    Catalogue,
    CatalogueError,
    Fit,
    Load,
    load_catalogue,
    size,
    why_not,
)


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: `kind`, above zero."""
    def parse(text: str) -> float:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m ch03_gpu size",
        description="Accelerators that serve N streams within a p95.")
    cli.add_argument("--streams", type=positive(int), required=True,
                     help="concurrent audio streams")
    cli.add_argument("--p95-ms", type=positive(float), default=300.0,
                     help="serving latency budget (default %(default)s)")
    cli.add_argument("--profile", choices=sorted(PROFILE.profiles),
                     default="tuned", help="cost profile (%(default)s)")
    cli.add_argument("--precision", choices=sorted(PROFILE.precisions),
                     default="bf16", help="number format (%(default)s)")
    cli.add_argument("--max-busy", type=positive(float), default=0.8,
                     help="busiest a device may run (%(default)s)")
    cli.add_argument("--catalogue", type=Path, default=CATALOGUE_FILE)
    return cli


def fits_table(fits: Sequence[Fit], streams: int) -> str:
    rows = [("accelerator", "instance", "streams/GPU", "GPUs",
             "window ms", "$/h", "$/h spot", "$/audio h",
             "spot $/audio h")]
    for f in fits:
        rows.append((
            f.offer.name, f.offer.instance, f"{f.per_device:,}",
            f"{f.devices:,}", f"{f.window_s * 1000:.1f}",
            f"{f.on_demand_per_hour:,.2f}", f"{f.spot_per_hour:,.2f}",
            f"{f.on_demand_per_hour / streams:.5f}",
            f"{f.spot_per_hour / streams:.5f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows)


def cheapest_by_precision(profile: DeviceProfile, cost_profile: str,
                          catalogue: Catalogue, load: Load) -> list[str]:
    lines = []
    for precision in profile.precisions:
        fits = size(profile, cost_profile, catalogue, precision, load)
        computes = any(precision in offer.tflops
                       for offer in catalogue.accelerators)
        if not computes:
            lines.append(f"  {precision:<6} none of these accelerators"
                         " computes in it")
        elif fits:
            best = fits[0]
            lines.append(
                f"  {precision:<6} {best.offer.name} x{best.devices}:"
                f" ${best.on_demand_per_hour:,.2f}/h,"
                f" ${best.on_demand_per_hour / load.streams:.5f}"
                " per audio hour")
        else:
            lines.append(f"  {precision:<6} none meets the budget")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        catalogue = load_catalogue(args.catalogue)
    except CatalogueError as error:
        print(f"error: {error}")
        return 2
    load = Load(args.streams, args.p95_ms / 1000, args.max_busy)
    fits = size(PROFILE, args.profile, catalogue, args.precision, load)
    print(f"{args.streams:,} streams, p95 <= {args.p95_ms:g} ms,"
          f" profile {args.profile}, {args.precision}, devices at most"
          f" {args.max_busy:.0%} busy")
    if not fits:
        print("no accelerator meets it:")
        for offer in catalogue.accelerators:
            why = why_not(PROFILE, args.profile, catalogue, offer,
                          args.precision, load)
            print(f"  {offer.name:<6} {why}")
        return 1
    print(fits_table(fits, args.streams))
    print("\nQuantization as a cost lever, cheapest in each format:")
    print("\n".join(cheapest_by_precision(PROFILE, args.profile,
                                          catalogue, load)))
    estimated = [f.offer.name for f in fits
                 if f.offer.spot_source == "estimate"]
    print(f"\nPrices and sources: {args.catalogue}.")
    if estimated:
        print(f"Spot prices estimated for {', '.join(estimated)}: check"
              " your region's Spot price history.")
    return 0
