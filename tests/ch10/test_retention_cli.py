"""`retention policy` and `retention run`, and a run killed with SIGKILL.

The command runs in this process on the test's databases (SQLite and
PostgreSQL: the control database, the ledger, two regions), at a fixed
time, with a fake audit log in place of the real one. One test runs it
as a real process and kills it with SIGKILL at the one moment that
matters: its first deletion committed, the audit entry not yet written.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ch07_api import database
from ch10_compliance import audit, retention_cli
from ch10_compliance.data_classes import DataClass
from ch10_compliance.retention import last_run
from ch10_compliance.retention_policy import DEFAULT_POLICY
from ch10_compliance.run_lock import only_run
from tests.ch10.store_fixtures import MASTER, ListSink
from tests.ch10.test_retention import (
    NOW,
    FakeAuditLog,
    World,
    counted,
    journal_rows,
    object_ids,
    seed,
    usage_ids,
    world,  # noqa: F401 (a fixture)
)

REPO = Path(__file__).resolve().parents[2]
REAL_AUDIT_LOG = retention_cli.audit_log_for


@dataclass
class FakeTrail(FakeAuditLog, ListSink):
    """The audit log the command writes to and prunes."""


Command = Callable[..., tuple[int, str, str]]


@pytest.fixture
def trail() -> FakeTrail:
    return FakeTrail()


@pytest.fixture
def environment(databases: dict[str, str],
                monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "REGION_STORES": f"eu={databases['eu']} us={databases['us']}",
        "AUDIO_MASTER_KEY": base64.b64encode(MASTER).decode(),
        "DATABASE_URL": databases["control"]}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LEDGER_URL", raising=False)
    return values


@pytest.fixture
def command(environment: dict[str, str], trail: FakeTrail,
            monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Iterator[Command]:
    monkeypatch.setattr(retention_cli, "audit_log_for",
                        lambda engine: trail)
    monkeypatch.setattr(retention_cli, "now_ms", lambda: NOW)

    def run(*argv: str) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser(prog="python -m ch10_compliance")
        commands = parser.add_subparsers(dest="command", required=True)
        retention_cli.add_parser(commands, "retention")
        code = retention_cli.run(parser.parse_args(["retention", *argv]))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run


def test_policy_prints_every_class_with_its_days_basis_and_source(
        command: Command) -> None:
    code, out, _ = command("policy")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("retention policy effective 2026-12-06, "
                               "reviewed by ")
    assert "audio            30 days  basis: consent" in lines
    assert "audit          2190 days  basis: legal_obligation" in lines
    assert "  source  740 ILCS 14/15(a) (Illinois BIPA): destroy " \
        "within 3 years of the last interaction, an upper bound, not a " \
        "target; AssemblyAI keeps async transcripts 1-30 days." in lines
    assert sum(line.startswith("  reason  ") for line in lines) == 5


def test_an_unusable_policy_is_refused_with_its_reason(
        command: Command, tmp_path: Path) -> None:
    path = tmp_path / "retention.toml"
    path.write_text(DEFAULT_POLICY.read_text().replace(
        "[audit]\nkeep_days = 2190", "[audit]\nkeep_days = 0"))

    for action in ("policy", "run"):
        code, out, err = command(action, "--policy", str(path))
        assert (code, out) == (2, "")
        assert err == (f"error: {path}: audit.keep_days: expected a "
                       "positive whole number of days, got 0\n")


def test_a_dry_run_prints_what_would_go_and_why_and_deletes_nothing(
        command: Command, world: World,  # noqa: F811 (the fixture)
        trail: FakeTrail, databases: dict[str, str]) -> None:
    seed(world)
    before = object_ids(world), usage_ids(world)

    code, out, _ = command("run", "--dry-run", "--ledger-url",
                           databases["ledger"])

    assert code == 0
    assert out.splitlines() == [
        "retention policy effective 2026-12-06; now 2027-01-15T12:00:00Z",
        "dry run: nothing deleted. A run now would delete:",
        "  audio         eu             2  consent: expired by "
        "2027-01-15T12:00:00Z (kept 30 days from storing)",
        "  transcript    eu             1  consent: expired by "
        "2027-01-15T12:00:00Z (kept 30 days from storing)",
        "  audio         us             1  consent: expired by "
        "2027-01-15T12:00:00Z (kept 30 days from storing)",
        "  transcript    us             0  consent: expired by "
        "2027-01-15T12:00:00Z (kept 30 days from storing)",
        "  usage         ledger         5  contract: rolled up into "
        "invoices and from before 2025-12-11T12:00:00Z (kept 400 days)",
        "  key_metadata  control        3  legitimate_interests: keys "
        "revoked or expired before 2026-01-15T12:00:00Z (kept 365 days "
        "after their end)",
        "  audit         control        ?  legal_obligation: entries "
        "from before 2021-01-16T12:00:00Z (kept 2190 days): contents "
        "pruned, hashes kept"]
    assert (object_ids(world), usage_ids(world)) == before
    assert trail.events == [] and trail.asked == []
    assert last_run(world.control) is None


def test_a_run_deletes_what_is_due_and_says_under_which_basis(
        command: Command, world: World,  # noqa: F811 (the fixture)
        trail: FakeTrail, databases: dict[str, str]) -> None:
    seeded = seed(world)

    code, out, _ = command("run", "--ledger-url", databases["ledger"])

    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "deleted, each deletion audited:"
    assert lines[5] == (
        "  usage         ledger         5  contract: rolled up into "
        "invoices and from before 2025-12-11T12:00:00Z (kept 400 days)")
    assert [line[:32] for line in lines[2:7]] == [
        "  audio         eu             2",
        "  audio         us             1",
        "  transcript    eu             1",
        "  usage         ledger         5",
        "  key_metadata  control        3"]
    assert lines[-2].startswith("keys destroyed: 4 (the KEKs of days")
    run = last_run(world.control)
    assert run is not None and lines[-1] == f"run {run.run_id} completed"
    assert object_ids(world) == seeded.kept_objects
    assert usage_ids(world) == seeded.kept_usage
    assert counted(trail.events, DataClass.AUDIO) == 3

    code, out, _ = command("run", "--ledger-url", databases["ledger"])
    assert (code, out.splitlines()[1]) == (0, "nothing was due")


def test_without_a_ledger_a_run_says_usage_was_not_reached(
        command: Command, world: World) -> None:  # noqa: F811
    seed(world)

    code, out, _ = command("run")

    assert code == 0
    assert ("  usage: no usage store configured (--ledger-url or "
            "LEDGER_URL)") in out.splitlines()
    assert len(usage_ids(world)) == 7


@pytest.mark.parametrize(("name", "value", "message"), [
    ("REGION_STORES", "eu", "error: 'eu' is not region=URL"),
    ("AUDIO_MASTER_KEY", "c2hvcnQ=",
     "error: AUDIO_MASTER_KEY must decode to 32 bytes, not 5")])
def test_a_misconfigured_store_is_refused_with_the_reason(
        command: Command, monkeypatch: pytest.MonkeyPatch, name: str,
        value: str, message: str) -> None:
    monkeypatch.setenv(name, value)

    code, out, err = command("run")

    assert (code, out) == (2, "")
    assert err.startswith(message)


def test_a_policy_not_yet_in_effect_deletes_nothing(
        command: Command, world: World,  # noqa: F811 (the fixture)
        monkeypatch: pytest.MonkeyPatch) -> None:
    seed(world)
    before = object_ids(world)
    monkeypatch.setattr(retention_cli, "now_ms",
                        lambda: 1_796_000_000_000)  # 2026-11-30

    code, _, err = command("run")

    assert code == 1
    assert err == ("error: the retention policy takes effect on "
                   "2026-12-06, after today (2026-11-30): nothing "
                   "deleted under it\n")
    assert object_ids(world) == before


def test_a_run_audits_into_the_real_audit_log(
        command: Command, world: World,  # noqa: F811 (the fixture)
        monkeypatch: pytest.MonkeyPatch,
        databases: dict[str, str]) -> None:
    monkeypatch.setattr(retention_cli, "audit_log_for", REAL_AUDIT_LOG)
    seed(world)

    code, _, _ = command("run", "--ledger-url", databases["ledger"])

    log = audit.open_audit_log(databases["control"])
    try:
        entries = [json.loads(entry) for _, entry in log.entries()]
    finally:
        log.engine.dispose()
    assert code == 0
    deleted = [e["details"] for e in entries
               if e["action"] == "data.deleted"]
    assert sum(d["count"] for d in deleted) == 12
    assert {d["basis"] for d in deleted} == {
        "consent", "contract", "legitimate_interests"}


# The child runs the command with an audit log that announces the
# first entry it is asked to write, then waits forever: the test kills
# it there, after a deletion has committed and before its audit entry.
CHILD = f"""
import argparse, sys, threading
from ch10_compliance import audit, retention_cli

class AuditLogKilledHere:
    def prune_before(self, at_ms):
        return 0

    def record(self, event):
        print("auditing", event.details["data_class"], flush=True)
        threading.Event().wait()

retention_cli.audit_log_for = lambda engine: AuditLogKilledHere()
retention_cli.now_ms = lambda: {NOW}
parser = argparse.ArgumentParser()
retention_cli.add_parser(parser.add_subparsers(dest="command"), "retention")
sys.exit(retention_cli.run(parser.parse_args(sys.argv[1:])))
"""


def killed_while_auditing(environment: dict[str, str], *argv: str) -> str:
    """Run the command in a process, SIGKILL it at its first audit
    entry; what it was auditing."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, "retention", *argv],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, **environment, "PYTHONPATH": str(REPO)})
    assert child.stdout is not None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=60)
        assert ready, "the command never reached its first audit entry"
        announced = child.stdout.readline().strip()
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        child.stdout.close()
    return announced


def test_a_run_killed_with_sigkill_is_completed_by_the_next_run_once(
        command: Command, world: World,  # noqa: F811 (the fixture)
        trail: FakeTrail, environment: dict[str, str],
        databases: dict[str, str]) -> None:
    seed(world)

    announced = killed_while_auditing(environment, "run", "--ledger-url",
                                      databases["ledger"])

    killed = last_run(world.control)
    assert killed is not None
    assert (killed.outcome, killed.finished_at_ms) == ("running", None)
    assert announced in ("auditing transcript", "auditing audio")
    unaudited = [i for i, audited in journal_rows(world) if not audited]
    assert len(unaudited) == 3  # the eu region's deletions, committed

    code, _, _ = command("run", "--ledger-url", databases["ledger"])
    command("run", "--ledger-url", databases["ledger"])

    assert code == 0
    assert {c: counted(trail.events, c) for c in DataClass} == {
        DataClass.AUDIO: 3, DataClass.TRANSCRIPT: 1, DataClass.USAGE: 5,
        DataClass.AUDIT: 0, DataClass.KEY_METADATA: 3}
    assert all(audited for _, audited in journal_rows(world))
    finished = last_run(world.control)
    assert finished is not None and finished.outcome == "completed"


def test_a_second_run_while_one_is_under_way_is_refused(
        command: Command, databases: dict[str, str]) -> None:
    control = database.open_engine(databases["control"])
    try:
        with only_run(control, "retention"):
            code, _, err = command("run")
            assert code == 1
            assert "another retention run is under way" in err
        code, _, _ = command("run")
        assert code == 0
    finally:
        control.dispose()
