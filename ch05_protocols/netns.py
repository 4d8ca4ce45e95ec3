"""A private network namespace for the lossy-link lab, and its removal.

Chapter 5, "WebTransport: QUIC datagrams, head-of-line blocking". The
lab's servers and clients run in a network namespace of their own
(`ip netns add ch05-lossy-<pid>`), with only a loopback, so the loss
rule touches nothing else on the machine. `Namespace` creates it,
brings its loopback up and installs the loss table (at 0%), and on
removal kills whatever still runs inside and deletes it, table and all.
A lab killed too hard to clean up (SIGKILL) leaves its namespace named
after a process that no longer exists; the next lab removes those.
Creating namespaces and loading nftables rules needs root, `ip` and
`nft`; `missing_requirements` says which of them is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

from ch05_protocols.loss_rule import (
    CommandError,
    Run,
    remove_table,
    run_command,
    set_loss,
)

PREFIX = "ch05-lossy-"
OURS = re.compile(rf"^{PREFIX}(\d+)\b")
ICE_ADDRESS = "127.0.0.2/8"


def missing_requirements(
        euid: int | None = None,
        which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """What this machine lacks for the lab, each said plainly."""
    missing = []
    if (os.geteuid() if euid is None else euid) != 0:
        missing.append("root (to create a network namespace and load"
                       " nftables rules)")
    missing += [f"the `{name}` command ({package})"
                for name, package in (("ip", "iproute2"),
                                      ("nft", "nftables"))
                if which(name) is None]
    return missing


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Namespace:
    name: str
    run: Run = run_command

    @property
    def nft(self) -> list[str]:
        """nft's command line, applied inside this namespace."""
        return self.exec_args(["nft"])

    def exec_args(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def create(self) -> None:
        self.run(["ip", "netns", "add", self.name], None)
        self.run(["ip", "-n", self.name, "link", "set", "lo", "up"], None)
        # WebRTC's ICE offers no candidate on 127.0.0.1: a second
        # loopback address gives it one.
        self.run(["ip", "-n", self.name, "addr", "add", ICE_ADDRESS,
                  "dev", "lo"], None)
        set_loss(0.0, self.nft, self.run)

    def pids(self) -> list[int]:
        listing = self.run(["ip", "netns", "pids", self.name], None)
        return [int(word) for word in listing.split()]

    def remove(self) -> None:
        """Kill what still runs inside, drop the table, delete the
        namespace; each step tried even if one before it failed."""
        errors = []
        try:
            pids = self.pids()
        except CommandError as error:
            pids, errors = [], [str(error)]
        for pid in pids:
            with suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(pid, signal.SIGKILL)
        for step in (lambda: remove_table(self.nft, self.run),
                     lambda: self.run(["ip", "netns", "del", self.name],
                                      None)):
            try:
                step()
            except CommandError as error:
                errors.append(str(error))
        if self.name in namespaces(self.run):
            raise CommandError(f"namespace {self.name} remains: "
                               + "; ".join(errors))


def namespaces(run: Run = run_command) -> list[str]:
    """The names `ip netns list` shows."""
    return [line.split()[0] for line in run(["ip", "netns", "list"],
                                            None).splitlines() if line]


def remove_orphans(run: Run = run_command,
                   alive: Callable[[int], bool] = process_exists,
                   ) -> list[str]:
    """Remove the namespaces of labs that died without cleaning up."""
    removed = []
    for name in namespaces(run):
        found = OURS.match(name)
        if found and not alive(int(found.group(1))):
            Namespace(name, run).remove()
            removed.append(name)
    return removed
