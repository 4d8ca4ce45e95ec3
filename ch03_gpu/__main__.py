"""`python -m ch03_gpu COMMAND`: the chapter's labs.

Chapter 3. Each command is a lab of its own, with its own flags:
`batching` compares batching policies under load, `coldstart` times a
service's start phase by phase, `memory` paged and contiguous KV cache
allocation on one request trace, `size` the accelerators that serve a
load within a latency budget, `speculate` what speculative decoding
buys. Bad flags stop with exit status 2 and a message naming the flag.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ch03_gpu import batching_cli, coldstart, size_lab, speculative_lab
from ch03_gpu.memory_lab import main_memory

Command = Callable[[Sequence[str]], int]
COMMANDS: dict[str, tuple[Command, str]] = {
    "batching": (batching_cli.main, "static, dynamic and continuous"
                 " batching under load"),
    "memory": (main_memory, "paged versus contiguous KV cache memory"),
    "coldstart": (coldstart.main, "cold-start anatomy of chapter 4's"
                  " service, and its mitigations"),
    "size": (size_lab.main, "accelerators that serve a load, and cost"),
    "speculate": (speculative_lab.main, "speculative decoding, measured"),
}


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in COMMANDS:
        # A command parses its own flags, --help included.
        run, _ = COMMANDS[words[0]]
        return run(words[1:])
    parser = argparse.ArgumentParser(
        prog="python -m ch03_gpu",
        description="Chapter 3: GPU optimization and cold starts.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        commands.add_parser(name, help=help_text)
    parser.parse_args(words)  # exits: help, or an unknown command
    return 2


if __name__ == "__main__":
    sys.exit(main())
