"""`python -m ch10_compliance audit ...`: verify, prove, record, publish.

Chapter 10, "Audit logging". `verify` recomputes the whole log and
checks every signed checkpoint, naming each edited, deleted, inserted
or moved entry by position, and exits 1 if anything is wrong. `prove
SEQ` prints an inclusion proof as JSON (publishing a checkpoint first if
none covers the entry yet) and `check-proof` checks one with nothing
but the public key, as a third party would. `consistency FIRST SECOND`
proves that one checkpoint's log extends another's. `record` writes an
operator's out-of-band action (a restore, a break-glass login).
`checkpoint` publishes the current root, `list` shows the last entries,
`public-key` prints the key verifiers need. Every command takes
`--database-url` (env `DATABASE_URL`, default chapter 9's SQLite file);
checkpoints are signed with `AUDIT_SIGNING_KEY` (`signer.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ch09_security.keys_cli import add_store_argument
from ch10_compliance import audit_verify
from ch10_compliance.audit import (
    AuditLog,
    NotCheckpointedError,
    UnknownEntryError,
    open_audit_log,
)
from ch10_compliance.audit_event import (
    AuditEvent,
    Outcome,
    UnsafeAuditEntryError,
)
from ch10_compliance.checkpoints import DEFAULT_ORIGIN
from ch10_compliance.proof_check import check_proof
from ch10_compliance.signer import (
    Signer,
    SigningKeyError,
    load_signer,
    new_seed,
    parse_public_key,
)

ORIGIN_VARIABLE = "AUDIT_LOG_ORIGIN"


def origin() -> str:
    return os.environ.get(ORIGIN_VARIABLE, DEFAULT_ORIGIN)


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="the tamper-evident audit log",
        description="Verify the audit log, prove an entry is in it, "
        "check a proof, record an operator's action.")
    actions = parser.add_subparsers(dest="action", required=True)
    for action, text in [
            ("verify", "recompute the log and check every checkpoint"),
            ("checkpoint", "sign and publish the current root"),
            ("list", "the last entries"),
            ("prove", "an inclusion proof for one entry, as JSON"),
            ("consistency", "a proof that one checkpoint extends "
             "another"),
            ("record", "record an operator's out-of-band action")]:
        sub = actions.add_parser(action, help=text, description=text)
        add_store_argument(sub)
        if action == "verify":
            sub.add_argument("--public-key", help="the log's public key "
                             "(default: this machine's signing key's)")
        if action == "list":
            sub.add_argument("--last", type=int, default=20)
        if action == "prove":
            sub.add_argument("seq", type=int, help="the entry's position")
        if action == "consistency":
            sub.add_argument("first", type=int, help="older size")
            sub.add_argument("second", type=int, help="newer size")
        if action == "record":
            sub.add_argument("--action", required=True,
                             dest="event_action",
                             help="dotted, e.g. admin.database_restored")
            sub.add_argument("--actor", required=True,
                             help="who, e.g. operator:ann")
            sub.add_argument("--target", default="")
            sub.add_argument("--owner", default="")
            sub.add_argument("--reason", default="")
            sub.add_argument("--failed", action="store_true",
                             help="the action failed")
    check = actions.add_parser(
        "check-proof", help="check a proof with the public key only")
    check.add_argument("proof", help="a file of JSON, or - for stdin")
    check.add_argument("--public-key",
                       help="the log's public key, obtained out of band "
                       "(default: the key the proof names)")
    actions.add_parser("public-key", help="the key that verifies "
                       "checkpoints")
    actions.add_parser("new-signing-key", help="a fresh seed for "
                       "AUDIT_SIGNING_KEY")


def run(args: argparse.Namespace) -> int:
    try:
        return dispatch(args)
    except (SigningKeyError, UnsafeAuditEntryError, UnknownEntryError,
            NotCheckpointedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def dispatch(args: argparse.Namespace) -> int:
    if args.action == "new-signing-key":
        print(new_seed())
        return 0
    if args.action == "check-proof":
        return check(args)
    signer = load_signer(os.environ)
    if args.action == "public-key":
        print(signer.public_key_text)
        return 0
    log = open_audit_log(args.database_url)
    try:
        return {"verify": verify, "checkpoint": checkpoint,
                "list": listing, "prove": prove,
                "consistency": consistency,
                "record": record}[args.action](args, log, signer)
    finally:
        log.engine.dispose()


# --8<-- [start:audit_verify_command]
def verify(args: argparse.Namespace, log: AuditLog, signer: Signer) -> int:
    key = (parse_public_key(args.public_key) if args.public_key
           else signer.public_key)
    report = audit_verify.verify(log, key)
    for finding in report.findings:
        print(f"position {finding.position}: {finding.kind}: "
              f"{finding.message}")
    pruned = (f", {report.pruned_below} pruned by retention"
              if report.pruned_below else "")
    verdict = "OK" if report.ok else f"{len(report.findings)} problems"
    print(f"{report.size} entries{pruned}, {report.checkpoints} "
          f"checkpoints: {verdict}")
    return 0 if report.ok else 1
# --8<-- [end:audit_verify_command]


def checkpoint(args: argparse.Namespace, log: AuditLog,
               signer: Signer) -> int:
    note = log.checkpoint(signer, origin())
    print(note or f"no new entries since the last checkpoint "
          f"({log.size()} entries)", end="" if note else "\n")
    return 0


def listing(args: argparse.Namespace, log: AuditLog, signer: Signer) -> int:
    for _, entry in log.entries(max(0, log.size() - args.last)):
        print(entry)
    return 0


def prove(args: argparse.Namespace, log: AuditLog, signer: Signer) -> int:
    try:
        proof = log.prove(args.seq)
    except NotCheckpointedError:
        log.checkpoint(signer, origin())
        proof = log.prove(args.seq)
    print(json.dumps(proof.as_json(signer.public_key_text), indent=2))
    return 0


def consistency(args: argparse.Namespace, log: AuditLog,
                signer: Signer) -> int:
    proof = log.prove_consistency(args.first, args.second)
    print(json.dumps(proof.as_json(signer.public_key_text), indent=2))
    return 0


def record(args: argparse.Namespace, log: AuditLog, signer: Signer) -> int:
    event = AuditEvent(
        args.event_action, args.actor,
        Outcome.FAILURE if args.failed else Outcome.SUCCESS,
        owner=args.owner, target=args.target, reason=args.reason,
        details={"via": "command line"})
    [seq] = log.append([event])
    print(f"recorded as entry {seq}")
    return 0


def check(args: argparse.Namespace) -> int:
    if args.proof == "-":
        text = sys.stdin.read()
    else:
        with open(args.proof) as file:
            text = file.read()
    try:
        proof = json.loads(text)
    except json.JSONDecodeError as error:
        print(f"error: not JSON: {error}", file=sys.stderr)
        return 2
    if not isinstance(proof, dict):
        print("error: a proof is a JSON object", file=sys.stderr)
        return 2
    pinned = args.public_key is not None
    key = parse_public_key(args.public_key if pinned
                           else str(proof.get("public_key", "")))
    verdict = check_proof(proof, key)
    print(("valid: " if verdict.ok else "INVALID: ") + verdict.message)
    if verdict.ok and not pinned:
        print("note: checked with the key inside the proof; pin the "
              "log's key with --public-key", file=sys.stderr)
    return 0 if verdict.ok else 1
