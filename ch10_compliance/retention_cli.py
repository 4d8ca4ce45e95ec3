"""`python -m ch10_compliance retention run|policy`: the schedule, applied.

Chapter 10, "Data retention and deletion policies for audio data".
`policy` prints the schedule: days, lawful basis, reason and source
for every data class. `run` applies it to every regional store
(`REGION_STORES`, the objects' keys under `AUDIO_MASTER_KEY`), the
control database (`--database-url`, env `DATABASE_URL`: chapter 9's
keys, the audit log, the record of runs) and chapter 8's ledger when
one is given (`--ledger-url`, env `LEDGER_URL`), and prints what it
deleted under which basis; `--dry-run` prints what would go and why,
and changes nothing. It is meant to run daily from a scheduler: a run
killed half-way is completed, and audited once, by the next, and a
second run while one is under way is refused (`run_lock.py`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine

from ch07_api import database
from ch09_security.keys_cli import add_store_argument
from ch10_compliance.audit import AuditLog
from ch10_compliance.audit_event import AuditSink
from ch10_compliance.data_classes import DataClass
from ch10_compliance.regional_store import configured_stores
from ch10_compliance.retention import (
    NO_LEDGER,
    Deleted,
    Due,
    PolicyNotInEffectError,
    PrunableLog,
    RetentionJob,
    RetentionReport,
    iso,
    why_due,
)
from ch10_compliance.retention_policy import (
    DEFAULT_POLICY,
    RetentionPolicy,
    RetentionPolicyError,
    load_policy,
)
from ch10_compliance.run_lock import RunLockedError, only_run

DEFAULT_DATABASE = "sqlite:///build/security.sqlite3"


class AuditTrail(PrunableLog, AuditSink, Protocol):
    """The audit log: the job writes to it and prunes it."""


def now_ms() -> int:
    return round(time.time() * 1000)


def audit_log_for(engine: Engine) -> AuditTrail:
    """The audit log in the control database, on the job's clock."""
    log = AuditLog(engine, now_ms)
    log.create_schema()
    trail: AuditTrail = log
    return trail


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="the retention schedule: print it, apply it",
        description="Delete what the retention policy says is due, "
        "audited; --dry-run to see what and why first.")
    actions = parser.add_subparsers(dest="action", required=True)
    run_parser = actions.add_parser(
        "run", help="delete what is due, each deletion audited")
    run_parser.add_argument(
        "--dry-run", action="store_true",
        help="print what would be deleted and why; change nothing")
    add_store_argument(run_parser)
    run_parser.add_argument(
        "--ledger-url", default=os.environ.get("LEDGER_URL"),
        help="chapter 8's usage ledger (env LEDGER_URL; default none: "
        "no usage events are deleted)")
    policy_parser = actions.add_parser(
        "policy", help="print the schedule: days, basis, source")
    for action in (run_parser, policy_parser):
        action.add_argument("--policy", type=Path, default=DEFAULT_POLICY,
                            help="the retention policy (TOML)")


def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.policy)
    except RetentionPolicyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.action == "policy":
        print(describe_policy(policy))
        return 0
    engines: list[Engine] = []
    try:
        job = build_job(policy, args, engines)
        with only_run(job.control_engine, "retention"):
            report = job.run(dry_run=args.dry_run)
    except (PolicyNotInEffectError, RunLockedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # a store, a URL or a key misconfigured
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        for engine in engines:
            engine.dispose()
    print(describe_report(policy, report, args.ledger_url is not None))
    return 0


def build_job(policy: RetentionPolicy, args: argparse.Namespace,
              engines: list[Engine]) -> RetentionJob:
    """The job on the configured stores; each engine it opens is added
    to `engines`, for the caller to close."""
    control = database.open_engine(args.database_url or DEFAULT_DATABASE)
    engines.append(control)
    stores = configured_stores(os.environ, now_ms)
    engines.extend(store.engine for store in stores.values())
    ledger = None
    if args.ledger_url is not None:
        ledger = database.open_engine(args.ledger_url)
        engines.append(ledger)
    log = audit_log_for(control)
    job = RetentionJob(policy, stores, control, log, log, now_ms, ledger)
    if not args.dry_run:
        job.create_schema()
    return job


def describe_policy(policy: RetentionPolicy) -> str:
    lines = [f"retention policy effective {policy.effective}, reviewed "
             f"by {policy.reviewed_by}"]
    for rule in policy.classes.values():
        lines += ["",
                  f"{rule.data_class:<13} {rule.keep_days:>5} days  "
                  f"basis: {rule.basis}",
                  f"  reason  {rule.reason}",
                  f"  source  {rule.source}"]
    return "\n".join(lines)


def due_line(data_class: str, store: str, count: str, basis: str,
             why: str) -> str:
    return f"  {data_class:<13} {store:<8} {count:>7}  {basis}: {why}"


def describe_due(due: Due) -> str:
    count = "?" if due.count is None else str(due.count)
    return due_line(due.data_class, due.store, count, due.basis, due.why)


def describe_deleted(policy: RetentionPolicy,
                     deleted: tuple[Deleted, ...]) -> list[str]:
    """One line per class and store, however many owners it spans."""
    order = list(DataClass)
    totals: dict[tuple[DataClass, str], list[Deleted]] = defaultdict(list)
    for done in sorted(deleted, key=lambda d: (order.index(d.data_class),
                                               d.store)):
        totals[done.data_class, done.store].append(done)
    lines = []
    for (data_class, store), group in totals.items():
        cutoff = max(d.cutoff_ms for d in group)
        lines.append(due_line(
            data_class, store, str(sum(d.count for d in group)),
            group[0].basis, why_due(policy.of(data_class), cutoff)))
    return lines


def describe_report(policy: RetentionPolicy, report: RetentionReport,
                    has_ledger: bool) -> str:
    lines = [f"retention policy effective {policy.effective}; now "
             f"{iso(report.now_ms)}"]
    if report.dry_run:
        lines.append("dry run: nothing deleted. A run now would delete:")
        lines += [describe_due(d) for d in report.due]
        return "\n".join(lines)
    lines.append("deleted, each deletion audited:" if report.deleted
                 else "nothing was due")
    lines += describe_deleted(policy, report.deleted)
    if not has_ledger:
        lines.append(f"  usage: {NO_LEDGER}")
    lines.append(f"keys destroyed: {report.keys_destroyed} (the KEKs of "
                 "days whose objects all expired: every copy of their "
                 "ciphertext is unreadable)")
    if report.run is not None:
        lines.append(f"run {report.run.run_id} {report.run.outcome}")
    return "\n".join(lines)
