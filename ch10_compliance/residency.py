"""Keeping a customer's data in the regions it may be kept in.

Chapter 10, "Data residency: keeping audio data in the right
geography". `residency.toml` lists the regions each customer may use;
the guard checks every object against it before any store sees the
object, and writes it only to its own region's store. A full region
refuses rather than spills: an EU-only customer's audio is never kept
in the US to make room, the request fails and says why. A refusal is
audited, so the log shows residency being enforced, not only promised.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from ch10_compliance.audit_event import (
    Action,
    AuditEvent,
    AuditSink,
    Outcome,
)
from ch10_compliance.regional_store import (
    Governed,
    RegionalStore,
    StoredObject,
)

DEFAULT_RESIDENCY = Path(__file__).with_name("residency.toml")


class ResidencyError(ValueError):
    """A residency file that cannot be used, and why."""


class RegionNotAllowedError(PermissionError):
    """A customer's data offered to a region it may not be kept in."""


@dataclass(frozen=True)
class ResidencyPolicy:
    regions: tuple[str, ...]  # where a store exists
    default_regions: tuple[str, ...]  # for customers not listed
    customers: Mapping[str, tuple[str, ...]]

    def allowed(self, owner: str) -> tuple[str, ...]:
        """The owner's regions, the preferred first."""
        return self.customers.get(owner, self.default_regions)


def region_list(data: Any, where: str, known: tuple[str, ...]
                ) -> tuple[str, ...]:
    if not isinstance(data, list) or not all(
            isinstance(region, str) and region for region in data):
        raise ResidencyError(f"{where} must be a list of region names")
    if len(set(data)) != len(data):
        raise ResidencyError(f"{where} names a region twice")
    unknown = [region for region in data if known and region not in known]
    if unknown:
        raise ResidencyError(
            f"{where} names {', '.join(unknown)}, not one of the regions "
            f"({', '.join(known)})")
    return tuple(data)


def load_residency(path: Path = DEFAULT_RESIDENCY) -> ResidencyPolicy:
    """Read and check a residency file; `ResidencyError` says what is
    wrong with it."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ResidencyError(f"{path}: {error}") from None
    regions = region_list(data.get("regions"), f"{path}: regions", ())
    if not regions:
        raise ResidencyError(f"{path}: regions must name at least one")
    customers = data.get("customers", {})
    if not isinstance(customers, dict):
        raise ResidencyError(f"{path}: customers must be a table")
    allowed: dict[str, tuple[str, ...]] = {}
    for owner, entry in customers.items():
        where = f"{path}: customers.{owner}.regions"
        if not isinstance(entry, dict):
            raise ResidencyError(f"{where} is missing")
        allowed[owner] = region_list(entry.get("regions"), where, regions)
    return ResidencyPolicy(
        regions=regions,
        default_regions=region_list(data.get("default_regions", []),
                                    f"{path}: default_regions", regions),
        customers=allowed)


# --8<-- [start:residency_guard]
@dataclass
class ResidencyGuard:
    policy: ResidencyPolicy
    stores: Mapping[str, RegionalStore]
    sink: AuditSink | None = None

    def region_for(self, owner: str, requested: str | None) -> str:
        """The region asked for if the owner may use it (none asked:
        the owner's first); never a region the owner may not use."""
        allowed = self.policy.allowed(owner)
        region = requested or (allowed[0] if allowed else "(none)")
        if region not in allowed:
            self._refuse(owner, region, "allowed: "
                         f"{', '.join(allowed) or 'none'}")
        if region not in self.stores:
            self._refuse(owner, region, "it has no store configured")
        return region

    def store(self, *items: Governed) -> list[StoredObject]:
        """Each item only in its own region's store, one transaction
        per region; a full store raises RegionFullError and nothing is
        tried elsewhere."""
        by_region: dict[str, list[Governed]] = {}
        for item in items:
            region = self.region_for(item.owner, item.region)
            by_region.setdefault(region, []).append(item)
        return [stored for region, group in by_region.items()
                for stored in self.stores[region].put(*group)]
# --8<-- [end:residency_guard]

    def _refuse(self, owner: str, region: str, why: str) -> NoReturn:
        if self.sink is not None:
            self.sink.record(AuditEvent(
                Action.RESIDENCY_REFUSED, "system:residency",
                Outcome.FAILURE, owner, reason=f"region {region}: {why}"))
        raise RegionNotAllowedError(
            f"customer {owner} may not keep data in region {region}; "
            f"{why}")
