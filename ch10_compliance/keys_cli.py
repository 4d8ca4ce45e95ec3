"""`python -m ch10_compliance keys ...`: chapter 9's key command, audited.

Chapter 10, "Audit logging: what to log (admin actions)". Creating,
rolling and revoking an API key are the admin actions an auditor asks
about first: who, when, which key, for whom. This command is chapter
9's `keys`, unchanged, with the key table read before and after it
runs; what changed becomes audit entries (`admin.key_created`,
`admin.key_rolled`, `admin.key_revoked`), named by key id, owner and
`--actor` (default `operator:` and the login name), never by the key.
A refused action (an unknown key) is audited as a failure. Reading the
change from the table rather than from the command's intent records
what happened, whatever the command's path to it.
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Mapping
from typing import Any

from ch09_security import keys_cli
from ch09_security.key_store import KeyRecord, KeyStore, UnknownKeyError
from ch10_compliance.audit import open_audit_log
from ch10_compliance.audit_event import Action, AuditEvent, Outcome, clipped


def add_parser(commands: Any, name: str) -> None:
    keys_cli.add_parser(commands, name)
    commands.choices[name].add_argument(
        "--actor", default=f"operator:{getpass.getuser()}",
        help="who is acting, for the audit log (default %(default)s)")


def key_changes(before: Mapping[str, KeyRecord],
                after: Mapping[str, KeyRecord],
                actor: str) -> list[AuditEvent]:
    """What changed in the key table, as admin actions."""
    events = []
    for key_id, record in after.items():
        old = before.get(key_id)
        facts = {"scopes": " ".join(sorted(record.scopes)),
                 "hint": record.hint}
        if old is None:
            events.append(AuditEvent(Action.KEY_CREATED, actor,
                                     owner=record.owner, target=key_id,
                                     details=facts))
        elif record.rolled_to and not old.rolled_to:
            events.append(AuditEvent(
                Action.KEY_ROLLED, actor, owner=record.owner,
                target=key_id, details={"successor": record.rolled_to,
                                        "expires_at_ms":
                                        record.expires_at_ms or 0}))
        if record.revoked_at_ms and not (old and old.revoked_at_ms):
            events.append(AuditEvent(Action.KEY_REVOKED, actor,
                                     owner=record.owner, target=key_id))
    return events


def run(args: argparse.Namespace) -> int:
    return keys_cli.run(args, audited)


def audited(store: KeyStore, args: argparse.Namespace) -> int:
    """Chapter 9's action, with what it changed (or why it could not)
    in the audit log."""
    audit = open_audit_log(args.database_url)
    try:
        before = {r.key_id: r for r in store.owned()}
        try:
            code = keys_cli.act(store, args)
        except (UnknownKeyError, ValueError) as error:
            audit.record(AuditEvent(
                f"admin.key_{args.action}", args.actor, Outcome.FAILURE,
                target=getattr(args, "key_id", ""),
                reason=clipped(str(error))))
            raise
        after = {r.key_id: r for r in store.owned()}
        audit.append(key_changes(before, after, args.actor))
        return code
    finally:
        audit.engine.dispose()
