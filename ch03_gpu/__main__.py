"""`python -m ch03_gpu <lab>`: the chapter's labs, one subcommand each.

Chapter 3. Each lab is a module with `main(argv)`; this file only maps
subcommand names to them, so a new lab is one line here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from ch03_gpu import coldstart

LABS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "coldstart": coldstart.main,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in LABS:
        names = ", ".join(sorted(LABS))
        print(f"usage: python -m ch03_gpu {{{names}}} [--help]",
              file=sys.stderr)
        return 2
    return LABS[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())
