"""`python -m ch11_slo COMMAND`: the chapter's SLO tools.

Chapter 11. `burn-rates` prints the burn-rate table of an objective and
period: factors, thresholds, and how fast each tier detects and resets;
`rules` turns SLO specs in any form Sloth reads (Sloth's own, its
Kubernetes resource, OpenSLO) into Prometheus rules that promtool
checks, and takes Sloth's generate flags; `validate` reads and
generates specs without writing anything;
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
from ch11_slo.generate import (
    Filters,
    discover,
    generate,
    generate_tree,
    pattern,
    validate,
)
from ch11_slo.invalid import InvalidField
from ch11_slo.jitter import DEFAULT_CHUNK_MS, jitter_report
from ch11_slo.rules import RuleOptions
from ch11_slo.spec import DEFAULT_PERIOD, SpecOptions, labels_of
from ch11_slo.target_cost import (
    DEFAULT_STREAMS,
    DEFAULT_TARGETS,
    RESULTS,
    target_cost_report,
)
from ch11_slo.windows import read_catalogue


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
    add_rules(commands.add_parser(
        "rules", help="Prometheus rules from SLO specs in any form Sloth"
                      " reads (a file or a directory)"))
    add_validate(commands.add_parser(
        "validate", help="read and generate SLO specs, writing nothing"))
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


def add_spec_input(command: argparse.ArgumentParser) -> None:
    """What `rules` and `validate` share with Sloth's CLI."""
    command.add_argument("spec", type=Path, nargs="?",
                         help="SLO spec file or directory")
    command.add_argument("-i", "--input", type=Path, dest="input_path",
                         help="the same, as Sloth names it")
    command.add_argument("-n", "--fs-include", metavar="REGEX",
                         help="with a directory: only paths matching")
    command.add_argument("-e", "--fs-exclude", metavar="REGEX",
                         help="with a directory: skip paths matching"
                              " (before --fs-include)")
    command.add_argument("--slo-period-windows-path", type=Path,
                         metavar="DIR",
                         help="Sloth AlertWindows files, one per period,"
                              " replacing the default tiers")
    command.add_argument("--default-slo-period", default=DEFAULT_PERIOD,
                         help="period of specs that name none (default"
                              f" {DEFAULT_PERIOD})")
    command.add_argument("--strict", action="store_true",
                         help="unknown fields are errors, not warnings")
    command.add_argument("-l", "--extra-labels", action="append",
                         default=[], metavar="KEY=VALUE",
                         help="a label for every SLO's rules (repeat it)")


def add_rules(rules: argparse.ArgumentParser) -> None:
    add_spec_input(rules)
    rules.add_argument("-o", "--out", "--output", type=Path, dest="output",
                       help="rules file (default: stdout, or -); a"
                            " directory when the input is one")
    rules.add_argument("--disable-recordings", action="store_true",
                       help="alerts only (the recordings come from"
                            " elsewhere)")
    rules.add_argument("--disable-alerts", action="store_true",
                       help="recordings only")


def add_validate(validate: argparse.ArgumentParser) -> None:
    add_spec_input(validate)


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


def spec_options(args: argparse.Namespace) -> SpecOptions:
    parse_duration(args.default_slo_period, "--default-slo-period")
    return SpecOptions(strict=args.strict,
                       default_period=args.default_slo_period,
                       windows=read_catalogue(args.slo_period_windows_path))


def rule_options(args: argparse.Namespace) -> RuleOptions:
    labels = {}
    for pair in args.extra_labels:
        key, equals, value = pair.partition("=")
        if not equals:
            raise InvalidField("--extra-labels", (
                f"{pair!r} is not KEY=VALUE"))
        labels[key] = value
    checked = labels_of(labels, "--extra-labels")
    return RuleOptions(extra_labels=checked,
                       recordings=not getattr(args, "disable_recordings",
                                              False),
                       alerts=not getattr(args, "disable_alerts", False))


def input_of(args: argparse.Namespace) -> Path:
    if (args.spec is None) == (args.input_path is None):
        raise InvalidField("spec", "give one spec file or directory"
                           " (as an argument or with -i)")
    path: Path = args.spec or args.input_path
    return path


def filters_of(args: argparse.Namespace) -> Filters:
    return Filters(pattern(args.fs_include, "--fs-include"),
                   pattern(args.fs_exclude, "--fs-exclude"))


def rules_command(args: argparse.Namespace) -> int:
    source = input_of(args)
    options, rules = spec_options(args), rule_options(args)
    if source.is_dir():
        if args.output is None:
            raise InvalidField("--out", "needed: the input is a directory")
        done = generate_tree(source, args.output, filters_of(args),
                             options, rules)
        warnings = [w for _, generated in done for w in generated.warnings]
        for target, _ in done:
            print(f"wrote {target}", file=sys.stderr)
    else:
        generated = generate(source, options, rules)
        warnings = list(generated.warnings)
        if args.output is None or str(args.output) == "-":
            print(generated.rules, end="")
        else:
            try:
                args.output.write_text(generated.rules, encoding="utf-8")
            except OSError as error:
                raise InvalidField("--output", f"cannot write {args.output}:"
                                   f" {error.strerror}") from None
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def validate_command(args: argparse.Namespace) -> int:
    paths = discover(input_of(args), filters_of(args))
    verdicts = validate(paths, spec_options(args), rule_options(args))
    for verdict in verdicts:
        if verdict.problem:
            print(f"invalid {verdict.path}: {verdict.problem}")
        else:
            print(f"ok {verdict.path}: {len(verdict.slo_ids)} SLOs")
    return 2 if any(verdict.problem for verdict in verdicts) else 0


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
               "validate": validate_command,
               "jitter": jitter_command,
               "accuracy-budget": accuracy_budget_command,
               "target-cost": target_cost_command}
    try:
        return command[args.command](args)
    except InvalidField as error:
        field = error.field
        if args.command not in ("rules", "validate"):
            field = FLAGS.get(field, field)
        print(f"error: {field}: {error.problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
