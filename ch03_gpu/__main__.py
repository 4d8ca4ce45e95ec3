"""`python -m ch03_gpu <lab>`: run one of chapter 3's labs.

Chapter 3, all sections. Each lab is a subcommand with its own flags
(`python -m ch03_gpu batching --help`); this module only dispatches.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from ch03_gpu import batching_cli

Main = Callable[[Sequence[str] | None], int]

# One entry per lab: subcommand name -> its main(argv).
SUBCOMMANDS: dict[str, Main] = {
    "batching": batching_cli.main,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    names = ", ".join(sorted(SUBCOMMANDS))
    if not args or args[0] in ("-h", "--help"):
        print(f"usage: python -m ch03_gpu {{{names}}} [options]")
        return 0 if args else 2
    command = SUBCOMMANDS.get(args[0])
    if command is None:
        print(f"unknown lab {args[0]!r}; choose one of: {names}",
              file=sys.stderr)
        return 2
    return command(args[1:])


if __name__ == "__main__":
    sys.exit(main())
