"""`python -m ch10_compliance evidence`: the controls' checks, on record.

Chapter 10, "SOC 2 for ML APIs". Runs every check of `evidence.py`
against this deployment: the audit log in the control database
(`--database-url`, env `DATABASE_URL`, default SQLite
`build/security.sqlite3`) against its checkpoints' public key
(`--audit-public-key`), the retention job's last run there
(`--max-age-days`, default 2), the regional stores (env `REGION_STORES`)
under the master key (env `AUDIO_MASTER_KEY`), the service's dialects,
and the log files given with `--logs`. It prints the report and writes
it, dated, into `build/evidence/<date>/` (or `--out`); it exits 1 when
any check failed, so a scheduler can alert on it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from ch07_api import database
from ch09_security.keys_cli import (
    DEFAULT_DATABASE,
    add_store_argument,
    now_ms,
)
from ch10_compliance import audit_verify
from ch10_compliance.audit import open_audit_log
from ch10_compliance.evidence import (
    AuditVerification,
    EvidenceReport,
    RetentionRun,
    SealedStore,
    audit_chain_verifies,
    encryption_on,
    no_pii_in_logs,
    retention_ran,
    run_checks,
    write_report,
    zero_retention_by_default,
)
from ch10_compliance.matrix import load_matrix
from ch10_compliance.regional_store import configured_stores
from ch10_compliance.retention import last_run
from ch10_compliance.signer import load_signer, parse_public_key

DEFAULT_OUT = Path("build/evidence")


def positive_days(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive whole number of days")
    return int(text)


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="run the controls' checks; write a dated report",
        description="Check that the controls operate, and keep the "
        "evidence.")
    add_store_argument(parser)
    parser.add_argument("--audit-public-key",
                        help="the audit log's public key, as published "
                        "(default: this machine's signing key's)")
    parser.add_argument("--logs", nargs="+", type=Path, default=[],
                        metavar="PATH",
                        help="log files, or folders of them, to scan "
                        "for PII")
    parser.add_argument("--max-age-days", type=positive_days, default=2,
                        help="how recent the last retention run must be "
                        "(default 2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where reports go ({DEFAULT_OUT}/<date>/)")


def verify_audit_log(url: str, public_key: str | None) -> AuditVerification:
    key = (parse_public_key(public_key) if public_key
           else load_signer(os.environ).public_key)
    log = open_audit_log(url)
    try:
        report: AuditVerification = audit_verify.verify(log, key)
        return report
    finally:
        log.engine.dispose()


def last_retention_run(engine: Engine) -> RetentionRun | None:
    run: RetentionRun | None = last_run(engine)
    return run


def regional_stores(master_key: bytes) -> Mapping[str, SealedStore]:
    stores: Mapping[str, SealedStore] = configured_stores(
        os.environ, now_ms, master_key)
    return stores


def run(args: argparse.Namespace) -> int:
    url = args.database_url or DEFAULT_DATABASE
    engine = database.open_engine(url)
    try:
        results = run_checks([
            partial(audit_chain_verifies,
                    partial(verify_audit_log, url, args.audit_public_key)),
            partial(retention_ran, partial(last_retention_run, engine),
                    now_ms, args.max_age_days),
            partial(encryption_on, os.environ, regional_stores),
            zero_retention_by_default,
            partial(no_pii_in_logs, args.logs),
        ])
    finally:
        engine.dispose()
    report = EvidenceReport(now_ms(), tuple(results), load_matrix())
    print(report.markdown(), end="")
    try:
        written = write_report(report, args.out)
    except OSError as error:
        print(f"error: cannot write the report: {error}", file=sys.stderr)
        return 2
    print(f"\nwritten: {written[0]} and {written[1]}", file=sys.stderr)
    return 0 if report.passed else 1
