"""A lossy link: an nftables rule that drops a chosen share of packets.

Chapter 5, "WebTransport: QUIC datagrams, head-of-line blocking". The
head-of-line lab needs a link that loses packets, and no `tc netem`:
one nftables table, in the lab's own network namespace, whose input hook
drops each packet with probability N in 1,000 (`numgen random`). Every
packet on the namespace's loopback passes the input hook once, so both
directions lose the same share: audio going up, results and
acknowledgements coming down. Two named counters say how many packets
the hook saw and how many it dropped, so each run can report the loss
it really had. The rate changes by replacing the table in one nft
transaction.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TABLE = "ch05_lossy"
# nft's command line: inside the namespace, plain `nft`; from outside,
# `ip netns exec NAME nft`.
Nft = Sequence[str]
Run = Callable[[Sequence[str], str | None], str]


class CommandError(RuntimeError):
    """A command of the lab's set-up failed; the message says which."""


def run_command(argv: Sequence[str], stdin: str | None = None) -> str:
    """Run one set-up command, bounded; its stdout, or CommandError."""
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CommandError(f"{' '.join(argv)}: {error}") from error
    if done.returncode != 0:
        raise CommandError(
            f"{' '.join(argv)}: exit {done.returncode}: "
            f"{done.stderr.strip()}")
    return done.stdout


def permille(loss_pct: float) -> int:
    """A loss rate in percent as the rule's threshold, out of 1,000."""
    if not 0 <= loss_pct <= 100:
        raise ValueError(f"loss rate {loss_pct}% is not within 0-100%")
    return round(loss_pct * 10)


# --8<-- [start:loss_rule]
def loss_ruleset(loss_pct: float, table: str = TABLE) -> str:
    """An nftables table whose input hook drops `loss_pct` percent of
    packets at random, counting what it sees and what it drops."""
    return "\n".join([
        f"table inet {table} {{",
        "\tcounter seen {}",
        "\tcounter dropped {}",
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        '\t\tcounter name "seen"',
        f"\t\tnumgen random mod 1000 < {permille(loss_pct)}"
        ' counter name "dropped" drop',
        "\t}",
        "}",
        "",
    ])
# --8<-- [end:loss_rule]


def replacing(loss_pct: float, table: str = TABLE) -> str:
    """The table, replaced in one transaction: declared (so that the
    delete finds it on the first run), deleted, then defined anew."""
    return (f"table inet {table}\ndelete table inet {table}\n"
            + loss_ruleset(loss_pct, table))


def set_loss(loss_pct: float, nft: Nft = ("nft",),
             run: Run = run_command) -> None:
    run([*nft, "-f", "-"], replacing(loss_pct))


def remove_table(nft: Nft = ("nft",), run: Run = run_command) -> None:
    run([*nft, "delete", "table", "inet", TABLE], None)


@dataclass(frozen=True)
class Counted:
    """Packets the input hook has seen and dropped, so far."""

    seen: int
    dropped: int

    def __sub__(self, earlier: Counted) -> Counted:
        return Counted(self.seen - earlier.seen,
                       self.dropped - earlier.dropped)

    @property
    def loss_pct(self) -> float:
        return 100 * self.dropped / self.seen if self.seen else 0.0


def parse_counters(listing: str) -> Counted:
    """`nft -j list counters table ...` read into a `Counted`."""
    packets = {item["counter"]["name"]: int(item["counter"]["packets"])
               for item in json.loads(listing)["nftables"]
               if "counter" in item}
    return Counted(packets["seen"], packets["dropped"])


def counted(nft: Nft = ("nft",), run: Run = run_command) -> Counted:
    listing = run([*nft, "-j", "list", "counters", "table", "inet", TABLE],
                  None)
    return parse_counters(listing)
