"""`python -m ch12_scaling COMMAND`: the chapter's service and labs.

Chapter 12. Each command has its own flags: `serve` runs chapter 6's
pipeline as replicas on Ray Serve behind its proxy, `autoscale-sim`
replays a day of traffic through the autoscaling policies,
`spot-sim` prices a day on spot capacity against its preemptions, and
`plan` sizes a fleet for a peak from measured capacity. A command's
module is imported only when it runs: Ray alone takes seconds to
import, and `plan` should not wait for it. Bad flags stop with exit
status 2 and a message naming the flag.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command: (module with `main(argv) -> int`, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("ch12_scaling.serve_command", "chapter 6's pipeline as"
              " replicas on Ray Serve, behind the Serve proxy"),
    "autoscale-sim": ("ch12_scaling.autoscale_sim", "a day of traffic"
                      " through each autoscaling policy"),
    "spot-sim": ("ch12_scaling.spot_sim", "a day on spot capacity:"
                 " cost saved against preemptions"),
    "plan": ("ch12_scaling.plan", "replicas, accelerators and monthly"
             " cost for a peak"),
}


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in COMMANDS:
        # A command parses its own flags, --help included.
        module, _ = COMMANDS[words[0]]
        run = importlib.import_module(module).main
        status: int = run(words[1:])
        return status
    parser = argparse.ArgumentParser(
        prog="python -m ch12_scaling",
        description="Chapter 12: scaling inference out.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        commands.add_parser(name, help=help_text)
    parser.parse_args(words)  # exits: help, or an unknown command
    return 2


if __name__ == "__main__":
    sys.exit(main())
