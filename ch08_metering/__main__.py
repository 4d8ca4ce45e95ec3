"""`python -m ch08_metering COMMAND`: the metering service and its tools.

Chapter 8. `serve` runs chapter 4's streaming endpoints with metering
and tier limits composed in, beside the usage ingest API; `invoice`
previews a customer's bill; `explain` rebuilds one invoice line from the
raw events; `deliver` sends usage to Stripe; `simulate` writes a seeded
month of usage for the demo customers; `stripe-invoice` bills a
customer's month on Stripe and prints Stripe's invoice beside ours.
Each command is a module with `add_parser` and `run`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ch08_metering import (
    delivery_cli,
    explain,
    invoice,
    serve,
    stripe_billing,
    synthetic,
)

COMMANDS = {
    "serve": serve,
    "invoice": invoice,
    "explain": explain,
    "deliver": delivery_cli,
    "simulate": synthetic,
    "stripe-invoice": stripe_billing,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch08_metering",
        description="Usage metering, billing and tier limits.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_parser(commands, name)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    code: int = COMMANDS[args.command].run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
