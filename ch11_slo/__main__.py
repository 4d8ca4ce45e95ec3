"""`python -m ch11_slo COMMAND`: the chapter's SLO tools.

Chapter 11. `burn-rates` prints the burn-rate table of an objective and
period: factors, thresholds, and how fast each tier detects and resets;
`rules` turns an SLO spec into Prometheus rules that promtool checks;
`report` measures the SLIs of client records against a tier's targets;
`scenario` replays a synthetic month and shows which alerts fire when;
`jitter` plays a jittery stream through playout buffers and weighs the
gaps each hides against the latency it adds; `accuracy-budget` shows an
outage and a model regression spending one error budget; `target-cost`
reads the benchmark results for what each latency target costs in
machines.
Bad input stops with exit status 2 and a message naming the field.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ch11_slo import report, scenario
from ch11_slo.accuracy_budget import accuracy_budget_report
from ch11_slo.burn_rates import (
    DEFAULT_SCRAPE_INTERVAL,
    burn_rate_table,
    format_table,
    parse_objective,
    table_record,
)
from ch11_slo.durations import parse_duration
from ch11_slo.invalid import InvalidField
from ch11_slo.jitter import DEFAULT_CHUNK_MS, jitter_report
from ch11_slo.rules import render_rules, rule_groups
from ch11_slo.spec import DEFAULT_PERIOD, parse_spec
from ch11_slo.target_cost import (
    DEFAULT_STREAMS,
    DEFAULT_TARGETS,
    RESULTS,
    target_cost_report,
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m ch11_slo",
        description="Error budgets, burn rates and Prometheus SLO rules.")
    commands = top.add_subparsers(dest="command", required=True)
    rates = commands.add_parser(
        "burn-rates", help="the burn-rate table of an objective and period")
    rates.add_argument("--objective", required=True,
                       help="SLO objective in percent, e.g. 99.9")
    rates.add_argument("--period", default=DEFAULT_PERIOD,
                       help="SLO period: 30d, 28d, 7d, 12h ...")
    rates.add_argument("--scrape-interval",
                       default=f"{DEFAULT_SCRAPE_INTERVAL}s",
                       help="Prometheus scrape interval (default 1m)")
    rates.add_argument("--json", action="store_true",
                       help="print JSON instead of a table")
    rules = commands.add_parser(
        "rules", help="Prometheus rules from a Sloth prometheus/v1 spec")
    rules.add_argument("spec", type=Path, help="SLO spec (YAML)")
    rules.add_argument("-o", "--output", type=Path,
                       help="rules file to write (default: stdout)")
    jitter = commands.add_parser(
        "jitter", help="playout delay vs added latency vs underruns")
    jitter.add_argument("--seed", type=int, default=0,
                        help="seed of the arrival trace (default 0)")
    jitter.add_argument("--chunk-ms", type=int, default=DEFAULT_CHUNK_MS,
                        help="ms of stream per chunk (default"
                             f" {DEFAULT_CHUNK_MS})")
    jitter.add_argument("--tier", default="voice-ai",
                        help="the tier whose first-result target is the"
                             " budget (default: voice-ai)")
    jitter.add_argument("--markdown", action="store_true",
                        help="print a Markdown table")
    add_accuracy_budget(commands.add_parser(
        "accuracy-budget",
        help="an outage and a model regression spending one error budget"))
    add_target_cost(commands.add_parser(
        "target-cost",
        help="what each latency target costs in machines, from the"
             " benchmark results"))
    for name, help_text in DELEGATED_HELP.items():
        delegated = commands.add_parser(name, help=help_text,
                                        add_help=False)
        delegated.add_argument("rest", nargs=argparse.REMAINDER)
    return top


def add_accuracy_budget(budget: argparse.ArgumentParser) -> None:
    budget.add_argument("--seed", type=int, default=0,
                        help="seed of the synthetic month (default 0)")
    budget.add_argument("--tier", default="voice-ai",
                        help="the tier whose max WER and goodput objective"
                             " define the budget (default: voice-ai)")
    budget.add_argument("--records", type=Path,
                        help="measure the budget a records file spent"
                             " instead")


def add_target_cost(cost: argparse.ArgumentParser) -> None:
    cost.add_argument("--targets", default=DEFAULT_TARGETS,
                      help="latency targets in ms, comma-separated"
                           f" (default {DEFAULT_TARGETS})")
    cost.add_argument("--streams", type=int, default=DEFAULT_STREAMS,
                      help="the fleet's concurrent streams (default"
                           f" {DEFAULT_STREAMS:,})")
    cost.add_argument("--price-per-hour", type=float,
                      help="price of one machine-hour, to add the cost")
    cost.add_argument("--results", type=Path, default=RESULTS,
                      help="directory of the benchmark results"
                           " (default: bench/results)")


DELEGATED_HELP = {
    "report": "SLIs of a records file against a tier's targets",
    "scenario": "a synthetic month of traffic: which alerts fire when",
}


def burn_rates_command(args: argparse.Namespace) -> int:
    table = burn_rate_table(
        parse_objective(args.objective),
        parse_duration(args.period, "period"),
        scrape_interval=parse_duration(args.scrape_interval,
                                       "scrape_interval"),
    )
    if args.json:
        print(json.dumps(table_record(table), indent=2))
    else:
        print(format_table(table), end="")
    for warning in table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def rules_command(args: argparse.Namespace) -> int:
    spec_path: Path = args.spec
    try:
        text = spec_path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidField("spec", f"cannot read {spec_path}: "
                           f"{error.strerror}") from None
    spec = parse_spec(text)
    rules = render_rules(rule_groups(spec), spec_path.name)
    if args.output is None:
        print(rules, end="")
    else:
        try:
            args.output.write_text(rules, encoding="utf-8")
        except OSError as error:
            raise InvalidField("--output", f"cannot write {args.output}: "
                               f"{error.strerror}") from None
    for warning in spec.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def jitter_command(args: argparse.Namespace) -> int:
    print(jitter_report(args.seed, args.chunk_ms, args.tier,
                        args.markdown), end="")
    return 0


def accuracy_budget_command(args: argparse.Namespace) -> int:
    print(accuracy_budget_report(args.seed, args.tier, args.records),
          end="")
    return 0


def target_cost_command(args: argparse.Namespace) -> int:
    print(target_cost_report(args.targets, args.streams,
                             args.price_per_hour, args.results), end="")
    return 0


# The checks name their fields; on the command line, the flags.
FLAGS = {"objective": "--objective", "period": "--period",
         "scrape_interval": "--scrape-interval", "seed": "--seed",
         "chunk_ms": "--chunk-ms", "tier": "--tier",
         "records": "--records", "targets": "--targets",
         "streams": "--streams", "price_per_hour": "--price-per-hour",
         "results": "--results"}


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # These two parse their own arguments, help included.
    if words and words[0] == "report":
        return report.main(words[1:])
    if words and words[0] == "scenario":
        return scenario.main(words[1:])
    args = parser().parse_args(words)
    command = {"burn-rates": burn_rates_command, "rules": rules_command,
               "jitter": jitter_command,
               "accuracy-budget": accuracy_budget_command,
               "target-cost": target_cost_command}
    try:
        return command[args.command](args)
    except InvalidField as error:
        field = error.field
        if args.command != "rules":
            field = FLAGS.get(field, field)
        print(f"error: {field}: {error.problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
