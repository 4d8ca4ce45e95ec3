"""`python -m ch05_protocols COMMAND`: the chapter's protocol services.

Chapter 5. Each command is a module with `add_parser` and `run`:
`grpc` serves bidirectional streaming recognition over gRPC.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ch05_protocols import grpc_command

COMMANDS = {
    "grpc": grpc_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ch05_protocols",
        description="The same audio stream over different protocols.")
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
