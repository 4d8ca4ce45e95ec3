"""`python -m ch09_security keys ...`: create, list, show, roll, revoke.

Chapter 9, "API key management" (the key lifecycle, from generation to
revocation). `create` prints the key once and never again: only its
keyed hash is stored. `roll` makes a successor with the same owner and
scopes and lets the old key work on for an overlap window; `revoke`
ends a key now, and the streams using it on every replica within
seconds. Every command takes `--database-url` (env `DATABASE_URL`;
default SQLite `build/security.sqlite3`) and hashes under
`KEY_HASH_SECRET` (default: a secret generated once into
`build/key-hash.secret`), which the server must share.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ch07_api import database
from ch09_security.key_store import (
    DEFAULT_SCOPES,
    KeyHasher,
    KeyRecord,
    KeyStore,
    Scope,
    UnknownKeyError,
)
from ch09_security.server_secret import SecretError, load_secret

DEFAULT_DATABASE = "sqlite:///build/security.sqlite3"
DURATION = re.compile(r"^(\d+)([smhd])$")
UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(text: str) -> int:
    """`90s`, `15m`, `24h`, `30d` -> milliseconds."""
    match = DURATION.match(text.strip())
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration such as 30s, 15m, 24h or 90d")
    return int(match[1]) * UNIT_MS[match[2]]


def now_ms() -> int:
    return round(time.time() * 1000)


def open_store(url: str | None) -> KeyStore:
    engine = database.open_engine(url or DEFAULT_DATABASE)
    store = KeyStore(engine, KeyHasher(load_secret(os.environ)), now_ms)
    store.create_schema()
    return store


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(record: KeyRecord) -> str:
    state = record.state(now_ms())
    lines = [
        f"{record.key_id}  {record.hint}  {state}",
        f"  owner      {record.owner}",
        f"  scopes     {' '.join(sorted(record.scopes))}",
        f"  created    {when(record.created_at_ms)}",
        f"  expires    {when(record.expires_at_ms)}",
        f"  revoked    {when(record.revoked_at_ms)}",
        f"  last used  {when(record.last_used_at_ms)}",
        f"  uses       {record.use_count}",
    ]
    if record.label:
        lines.insert(2, f"  label      {record.label}")
    if record.rolled_to:
        lines.append(f"  rolled to  {record.rolled_to}")
    return "\n".join(lines)


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    """`--database-url`, for every command that opens the key store."""
    parser.add_argument("--database-url",
                        default=os.environ.get("DATABASE_URL"),
                        help="the service's database: keys, and what is "
                        "kept beside them (env DATABASE_URL; default SQLite"
                        " build/security.sqlite3)")


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="API keys: create, list, show, roll, revoke",
        description="API keys with scopes, an owner and a lifecycle.")
    add_store_argument(parser)
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new key, shown once")
    create.add_argument("--owner", required=True,
                        help="the customer the key belongs to")
    create.add_argument("--scope", action="append",
                        choices=[s.value for s in Scope],
                        help="repeat for several (default: "
                        f"{' '.join(sorted(DEFAULT_SCOPES))})")
    create.add_argument("--label", default="", help="what it is for")
    create.add_argument("--expires-in", type=duration_ms,
                        help="e.g. 90d (default: no expiry)")
    listing = actions.add_parser("list", help="keys, never in full")
    listing.add_argument("--owner")
    for action in ("show", "revoke"):
        actions.add_parser(action).add_argument("key_id")
    roll = actions.add_parser(
        "roll", help="a successor; the old key works for --overlap")
    roll.add_argument("key_id")
    roll.add_argument("--overlap", type=duration_ms, default="24h",
                      help="how long the old key keeps working "
                      "(default 24h; 0s is not allowed: use revoke)")


Perform = Callable[[KeyStore, argparse.Namespace], int]


def run(args: argparse.Namespace, perform: Perform | None = None) -> int:
    """The command, `perform` (default: `act`) on the key store: a
    later chapter wraps `act` in its own."""
    try:
        store = open_store(args.database_url)
    except SecretError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return (perform or act)(store, args)
    except (UnknownKeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        store.engine.dispose()


def act(store: KeyStore, args: argparse.Namespace) -> int:
    if args.action == "create":
        made = store.create(args.owner, args.scope or DEFAULT_SCOPES,
                            args.label, args.expires_in)
        print(describe(made.record))
        print(f"\n{made.key}\n\nThis is the only time the key is shown:"
              " store it now.")
    elif args.action == "list":
        for record in store.owned(args.owner):
            print(describe(record).splitlines()[0]
                  + f"  {record.owner}")
    elif args.action == "show":
        print(describe(store.show(args.key_id)))
    elif args.action == "roll":
        made = store.roll(args.key_id, args.overlap)
        old = store.show(args.key_id)
        print(f"{old.key_id} keeps working until "
              f"{when(old.expires_at_ms)}\n")
        print(describe(made.record))
        print(f"\n{made.key}\n\nThis is the only time the key is shown:"
              " store it now.")
    else:
        record = store.revoke(args.key_id)
        print(f"{record.key_id} revoked at {when(record.revoked_at_ms)}; "
              "streams using it end within seconds on every replica")
    return 0
