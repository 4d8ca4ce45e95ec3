"""`python -m ch10_compliance subject ...`: a data subject's requests.

Chapter 10, "GDPR for voice data" and "CCPA implications for stored
audio and transcripts". `export SUBJECT --owner O` writes the subject's
archive and prints where; `erase` erases them in every region and
prints the signed receipt (JSON, on stdout: hand it to the customer);
`status` lists their requests with the deadline of each, days left, and
what is overdue; `consent grant|withdraw` records a subject's consent
to one purpose. `--law gdpr|ccpa` sets the deadline (GDPR by default).
Every command takes `--database-url` (env `DATABASE_URL`; default
chapter 9's SQLite file: requests, consents, stream records and the
audit log), `--ledger-url` (env `LEDGER_URL`: chapter 8's usage
ledger; without it, outputs say usage is not configured) and
`--exports-dir` (env `SUBJECT_EXPORTS_DIR`); the regional stores come
from `REGION_STORES`, their keys from `AUDIO_MASTER_KEY`, receipts are
signed with `AUDIT_SIGNING_KEY`, and the audit log names each subject
by a keyed hash under `KEY_HASH_SECRET`, as the service does.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from ch07_api import database
from ch09_security.keys_cli import (
    DEFAULT_DATABASE,
    add_store_argument,
    now_ms,
    when,
)
from ch09_security.server_secret import SecretError, load_secret
from ch10_compliance.audit import open_audit_log
from ch10_compliance.audit_event import AuditSink
from ch10_compliance.consent import ConsentLedger, Purpose
from ch10_compliance.processing import ProcessingRecords
from ch10_compliance.regional_store import configured_stores
from ch10_compliance.signer import SigningKeyError, load_signer
from ch10_compliance.subject_ref import SubjectRefs
from ch10_compliance.subject_requests import Law, SubjectRequests
from ch10_compliance.subjects import (
    NOT_CONFIGURED,
    RequestStatus,
    SubjectService,
    UnknownSubjectError,
)

DEFAULT_EXPORTS = "build/subject-exports"


@contextmanager
def audit_log(url: str | None) -> Iterator[AuditSink]:
    """The audit log in the control database, closed afterwards."""
    log = open_audit_log(url)
    try:
        yield log
    finally:
        log.engine.dispose()


def subject_refs(env: Mapping[str, str]) -> SubjectRefs:
    """How the audit log names a subject: the service's keyed hash,
    under the key store's secret (`KEY_HASH_SECRET`)."""
    return SubjectRefs(load_secret(env))


def operator() -> str:
    """Who runs the command, as the audit log names them."""
    try:
        return f"operator:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in a bare container
        return "operator:unknown"


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="a data subject's requests: export, erase, status, "
        "consent", description="Access, portability and erasure "
        "requests (GDPR, CCPA), and consent, for one data subject.")
    actions = parser.add_subparsers(dest="action", required=True)
    for action, text in [
            ("export", "an archive of everything held about the subject"),
            ("erase", "erase the subject in every region; print the "
             "signed receipt"),
            ("status", "the subject's requests and their deadlines"),
            ("consent", "grant or withdraw consent to one purpose")]:
        sub = actions.add_parser(action, help=text, description=text)
        if action == "consent":
            sub.add_argument("change", choices=["grant", "withdraw"])
        sub.add_argument("subject", help="as the customer names them")
        sub.add_argument("--owner", required=True, help="the customer")
        if action in ("export", "erase"):
            sub.add_argument("--law", choices=[law.value for law in Law],
                             default=Law.GDPR.value,
                             help="sets the deadline (default gdpr)")
        if action == "consent":
            sub.add_argument("--purpose", required=True,
                             choices=[p.value for p in Purpose])
        add_store_arguments(sub)


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    add_store_argument(parser)
    parser.add_argument("--ledger-url", default=env.get("LEDGER_URL"),
                        help="chapter 8's usage ledger (env LEDGER_URL; "
                        "default: none)")
    parser.add_argument("--exports-dir", type=Path,
                        default=env.get("SUBJECT_EXPORTS_DIR",
                                        DEFAULT_EXPORTS),
                        help="env SUBJECT_EXPORTS_DIR; default "
                        f"{DEFAULT_EXPORTS}")


def run(args: argparse.Namespace) -> int:
    control = database.open_engine(args.database_url or DEFAULT_DATABASE)
    engines = [control]
    try:
        refs = subject_refs(os.environ)
        with audit_log(args.database_url) as sink:
            consent = ConsentLedger(control, now_ms, sink, refs)
            consent.create_schema()
            if args.action == "consent":
                return change_consent(consent, args)
            service = open_service(control, consent, sink, refs, args,
                                   engines)
            return {"export": export, "erase": erase,
                    "status": status}[args.action](service, args)
    except (SecretError, SigningKeyError) as error:  # configuration
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (UnknownSubjectError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        for engine in engines:
            engine.dispose()


def open_service(control: Engine, consent: ConsentLedger, sink: AuditSink,
                 refs: Callable[[str, str], str], args: argparse.Namespace,
                 engines: list[Engine]) -> SubjectService:
    """The service on this configuration; each engine it opens is added
    to `engines`, for the caller to close."""
    env = os.environ
    stores = configured_stores(env, now_ms)
    engines.extend(store.engine for store in stores.values())
    ledger = database.open_engine(args.ledger_url) \
        if args.ledger_url else None
    if ledger is not None:
        engines.append(ledger)
    processing = ProcessingRecords(control, now_ms)
    requests = SubjectRequests(control, now_ms)
    processing.create_schema()
    requests.create_schema()
    return SubjectService(stores, consent, processing, requests, sink,
                          load_signer(env), now_ms, args.exports_dir,
                          ledger, refs=refs)


def change_consent(consent: ConsentLedger, args: argparse.Namespace) -> int:
    change = consent.grant if args.change == "grant" else consent.withdraw
    change(args.owner, args.subject, args.purpose, source=operator())
    print(f"{args.owner}/{args.subject}: {args.purpose} "
          f"{'granted' if args.change == 'grant' else 'withdrawn'}")
    return 0


def export(service: SubjectService, args: argparse.Namespace) -> int:
    result = service.export(args.owner, args.subject, Law(args.law),
                            operator())
    counts = ", ".join(f"{count} {name}"
                       for name, count in result.counts.items())
    usage = "" if "usage_events" in result.counts \
        else f"; usage {NOT_CONFIGURED}"
    print(f"{args.owner}/{args.subject} ({result.request_id}): {counts}"
          f"{usage}\n{result.path}")
    return 0


def erase(service: SubjectService, args: argparse.Namespace) -> int:
    receipt = service.erase(args.owner, args.subject, Law(args.law),
                            operator())
    body = receipt.body
    objects = sum(r["objects_deleted"] for r in body["regions"].values())
    print(f"{args.owner}/{args.subject} erased ({receipt.request_id}): "
          f"{plural(objects, 'object')} in "
          f"{plural(len(body['regions']), 'region')}; the signed receipt "
          "follows", file=sys.stderr)
    print(receipt.document)
    return 0


def status(service: SubjectService, args: argparse.Namespace) -> int:
    found = service.status(args.owner, args.subject)
    if not found:
        print(f"{args.owner}/{args.subject}: no requests")
    for entry in found:
        print(describe(entry))
    return 0


def describe(entry: RequestStatus) -> str:
    r = entry.request
    line = (f"{r.request_id}  {r.kind:<11}  {r.law}  received "
            f"{when(r.received_at_ms)}  due {when(r.deadline_ms)}")
    if r.extended_due_at_ms is not None:
        line += f" (extended: {r.extension_reason})"
    if r.completed_at_ms is not None:
        return line + f"  completed {when(r.completed_at_ms)}"
    days = entry.days_left or 0
    if entry.overdue:
        return line + f"  OVERDUE by {plural(-days, 'day')}"
    return line + f"  {plural(days, 'day')} left"


def plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"
