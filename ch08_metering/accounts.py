"""Customers, their billing tiers, and which API key belongs to whom.

Chapter 8, "Rate limiting tied to billing tiers". Usage is billed to a
customer, and the customer's tier sets its limits, so the first thing
metering needs from a request is whose it is. Keys are matched by their
SHA-256, so the accounts file holds no secret; an admitted key with no
customer is refused, because its usage could not be billed.
"""

from __future__ import annotations

import argparse
import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_ACCOUNTS = Path(__file__).with_name("accounts.toml")


@dataclass(frozen=True)
class Tier:
    name: str
    max_concurrent_streams: int
    audio_seconds_per_minute: float


@dataclass(frozen=True)
class Customer:
    id: str
    tier: Tier
    stripe_customer_id: str


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class Accounts:
    tiers: Mapping[str, Tier]
    customers: Mapping[str, Customer]
    by_key_digest: Mapping[str, str]  # sha256(key) -> customer id
    dev_customer: str | None = None

    def customer_for_key(self, api_key: str) -> Customer | None:
        customer_id = self.by_key_digest.get(key_digest(api_key))
        return None if customer_id is None else self.customers[customer_id]

    def with_key(self, api_key: str, customer_id: str) -> Accounts:
        """These accounts, with one more key (the development key)."""
        keys = {**self.by_key_digest, key_digest(api_key): customer_id}
        return replace(self, by_key_digest=keys)


class AccountsError(ValueError):
    """The accounts file is inconsistent."""


def parse_accounts(raw: Mapping[str, Any]) -> Accounts:
    tiers = {
        name: Tier(name, int(t["max_concurrent_streams"]),
                   float(t["audio_seconds_per_minute"]))
        for name, t in raw.get("tiers", {}).items()
    }
    customers: dict[str, Customer] = {}
    keys: dict[str, str] = {}
    for cid, c in raw.get("customers", {}).items():
        if c["tier"] not in tiers:
            raise AccountsError(f"customer {cid}: no tier {c['tier']!r}")
        customers[cid] = Customer(cid, tiers[c["tier"]],
                                  str(c["stripe_customer_id"]))
        for digest in c.get("key_sha256", []):
            if digest in keys:
                raise AccountsError(f"key {digest[:12]}... listed twice")
            keys[digest] = cid
    dev = raw.get("dev_customer")
    if dev is not None and dev not in customers:
        raise AccountsError(f"dev_customer {dev!r} is not a customer")
    return Accounts(tiers, customers, keys, dev)


def add_accounts_argument(parser: argparse.ArgumentParser) -> None:
    """`--accounts`, for every command that needs the customers."""
    parser.add_argument("--accounts", type=Path, default=DEFAULT_ACCOUNTS,
                        help="tiers, customers and their Stripe ids (TOML)")


def load_accounts(path: Path = DEFAULT_ACCOUNTS) -> Accounts:
    with path.open("rb") as file:
        return parse_accounts(tomllib.load(file))
