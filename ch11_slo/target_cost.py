"""What a tighter latency target costs in machines, from the benchmarks.

Chapter 11, "Setting SLO targets: balancing user experience with
infrastructure cost". A latency target is a load limit: the tighter it
is, the fewer streams a machine may carry and the more machines a fleet
needs. This reads the latency the benchmarks measured at each load
(`bench/results/`, with the commit and machine of the run) and, for
each target, gives the most streams a machine carried within it:
interpolated linearly between two measured loads, one within the target
and the next beyond it, never extrapolated past the loads measured. A
target tighter than every measured load, or looser than the heaviest,
says so rather than guess. Machines for a fleet are rounded up; a
price per machine-hour, when given, turns them into cost.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ch11_slo.invalid import InvalidField

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DEFAULT_TARGETS = "100,200,300,500,800"
DEFAULT_STREAMS = 1_000
NO_PRICE = (
    "No price: the repository prices GPU instances"
    " (ch03_gpu/catalogue.toml), not the CPU machines these figures were"
    " measured on; --price-per-hour adds the cost of yours.")


@dataclass(frozen=True)
class Series:
    """One latency percentile of one configuration, against streams."""

    results: str  # the results file
    percentile: str
    what: str
    points: str  # pattern of the figures at each load: group 1, streams
    # The benchmark's own search: target ms -> the figure holding the
    # most streams it found within that target.
    searches: Mapping[float, str]


SERIES = (
    # bench/ch06_pipeline.py: capacity is p95 final within 300 ms, none
    # refused; the CPU split at 200 streams runs the same configuration.
    Series("ch06_pipeline.json", "p95",
           "final latency after the end of speech, chapter 6's service"
           " with the full mock engine (tuned profile, batching on,"
           " degradation off)",
           r"p95_final_ms_batched_at_(\d+)",
           {300.0: "capacity_batching_tuned"}),
    # bench/ch04_streaming.py: capacity is p99 within 100 ms.
    Series("ch04_streaming.json", "p99",
           "from a chunk sent to the first result covering it, chapter"
           " 4's service with the mock recognizer",
           r"with_mock_p99_ms_at_(\d+)_streams",
           {100.0: "with_mock_capacity_streams_p99_100ms"}),
)


@dataclass(frozen=True)
class Measured:
    """A load and its latency; for a search's answer, the latency is
    the search's target, the most it can be."""

    streams: int
    latency_ms: float
    searched: bool = False

    def meets(self, target_ms: float) -> bool | None:
        """Within the target; None where a search cannot tell."""
        if self.latency_ms <= target_ms:
            return True
        return None if self.searched else False


@dataclass(frozen=True)
class Capacity:
    """The most streams a machine carries within one target."""

    target_ms: float
    streams: int | None  # None: not measured
    at_least: bool  # the target was met at the heaviest load measured
    source: str

    def machines(self, fleet: int) -> int | None:
        return None if self.streams is None else math.ceil(
            fleet / self.streams)


def capacity(measured: Sequence[Measured], target_ms: float) -> Capacity:
    """Interpolate between the last load within the target and the
    first beyond it; outside the loads measured, say so."""
    within: Measured | None = None
    beyond: Measured | None = None
    for point in sorted(measured, key=lambda m: m.streams):
        verdict = point.meets(target_ms)
        if verdict is False:
            beyond = point
            break
        within = point if verdict else within
    if within is None:
        return Capacity(target_ms, None, False, lightest(measured, beyond))
    if within.searched and within.latency_ms == target_ms:
        return Capacity(target_ms, within.streams, False,
                        "the benchmark's search")
    if beyond is None:
        return Capacity(target_ms, within.streams, True,
                        "no load measured missed it")
    if within.latency_ms == target_ms:
        return Capacity(target_ms, within.streams, False, "measured")
    share = ((target_ms - within.latency_ms)
             / (beyond.latency_ms - within.latency_ms))
    streams = within.streams + (beyond.streams - within.streams) * share
    return Capacity(target_ms, math.floor(streams), False,
                    f"{label(within)} to {beyond.streams} streams")


def lightest(measured: Sequence[Measured], beyond: Measured | None) -> str:
    """What the lightest load measured says of a target it missed."""
    if beyond is not None:
        return f"{beyond.streams} streams took {beyond.latency_ms:g} ms"
    if not measured:
        return "nothing measured"
    first = min(measured, key=lambda m: m.streams)
    return (f"{first.streams} streams only known within"
            f" {first.latency_ms:g} ms")


def label(point: Measured) -> str:
    return f"{point.streams} (search)" if point.searched else str(
        point.streams)


def load_results(directory: Path, name: str) -> dict[str, object]:
    path = directory / name
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidField("results", f"cannot read {path}:"
                           f" {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise InvalidField("results", f"{path} is not JSON: {error}"
                           ) from None
    if not isinstance(results, dict):
        raise InvalidField("results", f"{path} is not a JSON object")
    return results


def figure(results: Mapping[str, object], key: str, source: str) -> float:
    value = results.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidField("results", f"{source} has no figure {key!r}")
    return float(value)


def measurements(series: Series,
                 results: Mapping[str, object]) -> list[Measured]:
    """Every load the series' results file holds, searches included;
    a percentile never reached (written -1) is no measurement."""
    found = {}
    for key, value in results.items():
        match = re.fullmatch(series.points, key)
        if match and isinstance(value, int | float) and value >= 0:
            found[int(match.group(1))] = Measured(int(match.group(1)),
                                                  float(value))
    for target_ms, key in series.searches.items():
        streams = int(figure(results, key, series.results))
        if streams > 0 and streams not in found:
            found[streams] = Measured(streams, target_ms, searched=True)
    if not found:
        raise InvalidField("results", f"{series.results} holds no"
                           f" figure matching {series.points!r}")
    return sorted(found.values(), key=lambda m: m.streams)


def shown(path: Path) -> str:
    """A path as the reader would type it, from the repository."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO) if resolved.is_relative_to(REPO)
               else path)


def provenance(path: Path, results: Mapping[str, object]) -> str:
    machine = results.get("machine")
    where = shown(path)
    if not isinstance(machine, dict):
        return f"{where}: no machine recorded."
    return (f"{where}: make bench at {machine.get('git_commit')},"
            f" {str(machine.get('recorded_at', ''))[:10]},"
            f" {machine.get('cpu')}, {machine.get('cores')} cores.")


def describe_points(measured: Sequence[Measured]) -> str:
    loads = [f"{m.streams} streams {m.latency_ms:g} ms"
             for m in measured if not m.searched]
    found = [f"{m.streams} streams within {m.latency_ms:g} ms"
             for m in measured if m.searched]
    text = "Measured: " + ", ".join(loads)
    if found:
        text += "; the benchmark's search: " + ", ".join(found)
    return text + "."


def money(amount: float, bound: bool) -> str:
    return ("at most " if bound else "") + f"${amount:,.2f}"


def cells(row: Capacity, fleet: int,
          price: float | None) -> tuple[str, ...]:
    machines = row.machines(fleet)
    if machines is None:
        count, cost = "not measured", ("-", "-")
    else:
        bound = "at most " if row.at_least else ""
        count = ("at least " if row.at_least else "") + str(row.streams)
        cost = (f"{bound}{machines}",
                "" if price is None else money(machines * price,
                                               row.at_least))
    shown = cost if price is not None else cost[:1]
    return (f"{row.target_ms:g} ms", count, *shown, row.source)


def format_table(rows: Sequence[Capacity], fleet: int,
                 price: float | None) -> str:
    header = ("target", "streams", "machines",
              *(("$/hour",) if price is not None else ()), "from")
    table = [header] + [cells(row, fleet, price) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    legend = (f"streams: the most a machine carried within the target."
              f" machines: for {fleet:,} streams, rounded up.")
    return "\n".join("  ".join(cell.ljust(width) for cell, width
                               in zip(row, widths, strict=True)).rstrip()
                     for row in table) + "\n" + textwrap.fill(legend, 72)


def conclusion(series: Series, rows: Sequence[Capacity],
               fleet: int) -> str:
    """What the rows say, computed from them."""
    known = [r for r in rows if r.streams is not None and not r.at_least]
    parts = []
    if len(known) >= 2:
        tight, loose = known[0], known[-1]
        fewer = 1 - (tight.streams or 0) / (loose.streams or 1)
        more = (tight.machines(fleet) or 0) / (loose.machines(fleet) or 1)
        parts.append(
            f"Tightening the {series.percentile} target from"
            f" {loose.target_ms:g} ms to {tight.target_ms:g} ms takes a"
            f" machine from {loose.streams} streams to {tight.streams}"
            f" ({fewer:.0%} fewer): {fleet:,} streams need"
            f" {tight.machines(fleet)} machines instead of"
            f" {loose.machines(fleet)} ({more - 1:+.0%}).")
    elif known:
        parts.append(
            f"Only the {known[0].target_ms:g} ms target has an answer:"
            f" {known[0].streams} streams a machine,"
            f" {known[0].machines(fleet)} machines for {fleet:,} streams.")
    unmeasured = [f"{r.target_ms:g}" for r in rows if r.streams is None]
    if unmeasured:
        parts.append(
            f"{', '.join(unmeasured)} ms: tighter than every load"
            " measured; only a benchmark at fewer streams can say what"
            " they cost.")
    bounded = [r for r in rows if r.at_least]
    if bounded:
        parts.append(
            f"{', '.join(f'{r.target_ms:g}' for r in bounded)} ms: met at"
            f" the heaviest load measured ({bounded[0].streams} streams);"
            " only a benchmark beyond it can say how many more.")
    return " ".join(parts)


def parse_targets(text: str) -> list[float]:
    """Targets in ms from `100,200,300`: positive, finite, ascending."""
    try:
        targets = [float(part) for part in text.split(",")]
    except ValueError:
        raise InvalidField("targets", f"{text!r} is not a comma-separated"
                           " list of milliseconds (e.g. 100,300,800)"
                           ) from None
    if not all(math.isfinite(t) and t > 0 for t in targets):
        raise InvalidField("targets", f"{text!r}: every target must be a"
                           " positive number of ms")
    return sorted(set(targets))


def check_fleet(fleet: int, price: float | None) -> None:
    if fleet < 1:
        raise InvalidField("streams", f"{fleet} is not a fleet (use 1 or"
                           " more streams)")
    if price is not None and not (math.isfinite(price) and price > 0):
        raise InvalidField("price_per_hour", f"{price} is not a price"
                           " (use a positive amount)")


def series_report(series: Series, directory: Path,
                  targets: Sequence[float], fleet: int,
                  price: float | None) -> str:
    results = load_results(directory, series.results)
    measured = measurements(series, results)
    rows = [capacity(measured, target) for target in targets]
    where = provenance(directory / series.results, results)
    head = (f"{series.percentile} {series.what}. {where}"
            f" {describe_points(measured)}")
    return "\n".join([
        textwrap.fill(head, 72, break_long_words=False,
                      break_on_hyphens=False), "",
        format_table(rows, fleet, price), "",
        textwrap.fill(conclusion(series, rows, fleet), 72),
    ]) + "\n"


INTRO = (
    "What a latency target costs: for each target, the most streams a"
    " machine carried within it (linear between two measured loads,"
    " never beyond them), and the machines a fleet needs, rounded up."
    " A p99 within a target puts the p95 within it too, so a p99"
    " series is a floor for a p95 target.")


def target_cost_report(targets: str = DEFAULT_TARGETS,
                       fleet: int = DEFAULT_STREAMS,
                       price: float | None = None,
                       directory: Path = RESULTS,
                       series: Sequence[Series] = SERIES) -> str:
    """What `python -m ch11_slo target-cost` prints."""
    wanted = parse_targets(targets)
    check_fleet(fleet, price)
    parts = [textwrap.fill(INTRO, 72)]
    parts += [series_report(s, directory, wanted, fleet, price)
              for s in series]
    if price is None:
        parts.append(textwrap.fill(NO_PRICE, 72) + "\n")
    return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"
