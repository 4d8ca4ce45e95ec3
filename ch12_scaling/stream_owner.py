"""Whose stream is this, and where may its audio be processed?

Chapter 12, "Multi-region deployment: data sovereignty boundaries". A
request router sees a stream's upgrade request before any replica
does; to keep a customer's audio in its regions it must know the
customer. The request carries an API key, where its dialect puts it
(chapter 4's `credential`); the key names its owner (`--key-owners`);
chapter 10's residency file says where the owner's data may be
processed, the preferred region first. A key with no owner, or a
request that is not a stream, gets the file's default regions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from websockets.datastructures import Headers

from ch04_streaming.dialects.dialect import Dialect
from ch04_streaming.server import folded
from ch10_compliance.residency import ResidencyPolicy


class KeyOwnersError(ValueError):
    """A `--key-owners` value that is not KEY=OWNER pairs."""


def parse_key_owners(text: str) -> dict[str, str]:
    """`key1=acme-eu,key2=clinic-us`; empty: no key has an owner."""
    owners: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, owner = pair.partition("=")
        if not sep or not key.strip() or not owner.strip():
            raise KeyOwnersError(f"{pair!r} is not KEY=OWNER")
        owners[key.strip()] = owner.strip()
    return owners


@dataclass(frozen=True)
class StreamOwners:
    policy: ResidencyPolicy  # chapter 10's
    owners: Mapping[str, str]  # API key -> customer
    dialects: Mapping[str, Dialect]  # chapter 4's, by path

    def regions_of(self, path: str,
                   raw_headers: Iterable[tuple[bytes, bytes]],
                   query_string: bytes) -> tuple[str, ...]:
        """The regions the stream's audio may be processed in."""
        dialect = self.dialects.get(path)
        if dialect is None:
            return self.policy.default_regions
        headers = folded(Headers(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in raw_headers))
        query = dict(parse_qsl(query_string.decode("latin-1")))
        key = dialect.credential(headers, query) or ""
        return self.policy.allowed(self.owners.get(key, ""))


def residency_refusal(owners: StreamOwners, region: str, path: str,
                      raw_headers: Iterable[tuple[bytes, bytes]],
                      query_string: bytes) -> str | None:
    """Why a replica in `region` must not take this stream; None when
    it may. The router keeps streams in their regions; a replica checks
    again, for when the customer's regions have no replica at all."""
    regions = owners.regions_of(path, raw_headers, query_string)
    if region in regions:
        return None
    return (f"this customer's audio stays in {', '.join(regions)}; no"
            " replica there can take the stream now")
