"""`python -m ch09_security signing-keys ...`: list, rotate, retire.

Chapter 9, "OAuth2 flows for ML API access" (signing keys and their
rotation). `rotate` adds a signing key, which signs every token from
then on; tokens signed by the older keys still verify until those keys
are retired. `retire KID` withdraws a key from the JWKS: tokens it
signed stop verifying within a minute on every replica (the verifiers
reread the keys). Rotate first, wait out the longest token's life,
then retire: no token in use is cut off. The keys share the key store's
database and secret (`--database-url`, `KEY_HASH_SECRET`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ch09_security.keys_cli import (
    add_store_argument,
    now_ms,
    open_store,
    when,
)
from ch09_security.server_secret import SecretError
from ch09_security.signing_keys import SigningKeys


def add_parser(commands: Any, name: str) -> None:
    parser = commands.add_parser(
        name, help="token signing keys: list, rotate, retire",
        description="The Ed25519 keys that sign this service's tokens.")
    add_store_argument(parser)
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the active keys, newest last")
    actions.add_parser("rotate", help="a new key signs from now on")
    actions.add_parser("retire", help="its tokens stop verifying"
                       ).add_argument("kid")


def run(args: argparse.Namespace) -> int:
    try:
        store = open_store(args.database_url)
    except SecretError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    keys = SigningKeys(store.engine, store.hasher.secret, now_ms)
    keys.create_schema()
    try:
        active = keys.active()
        if args.action == "rotate":
            made = keys.rotate()
            print(f"{made.kid} signs every token from now on; older keys"
                  " still verify until retired")
        elif args.action == "retire":
            if args.kid not in dict(active):
                print(f"error: no active signing key {args.kid}",
                      file=sys.stderr)
                return 1
            keys.retire(args.kid)
            print(f"{args.kid} retired: its tokens stop verifying within"
                  " 60 s on every replica")
        else:
            for number, (kid, created_ms) in enumerate(active, start=1):
                signing = "  signs" if number == len(active) else ""
                print(f"{kid}  created {when(created_ms)}{signing}")
        return 0
    finally:
        store.engine.dispose()
