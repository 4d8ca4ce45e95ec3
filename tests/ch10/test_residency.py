"""Residency: a customer's objects land only in regions it may use.

Two real stores (two databases: SQLite files, or PostgreSQL schemas)
stand for the EU and the US, so each test can look in the region the
data must not reach and find it empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ch10_compliance.audit_event import Action, Outcome
from ch10_compliance.regional_store import RegionalStore, RegionFullError
from ch10_compliance.residency import (
    DEFAULT_RESIDENCY,
    RegionNotAllowedError,
    ResidencyError,
    ResidencyGuard,
    ResidencyPolicy,
    load_residency,
)
from tests.ch10.store_fixtures import (
    AUDIO,
    ListSink,
    ManualClock,
    audio,
    open_stores,
    transcript,
)

POLICY = ResidencyPolicy(
    regions=("eu", "us"), default_regions=("us", "eu"),
    customers={"acme-eu": ("eu",), "clinic-us": ("us",),
               "nowhere": ()})


@pytest.fixture
def stores(region_urls: dict[str, str],
           clock: ManualClock) -> Iterator[dict[str, RegionalStore]]:
    yield from open_stores(region_urls, clock, 2 * len(AUDIO))


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def guard(stores: dict[str, RegionalStore], sink: ListSink) -> ResidencyGuard:
    return ResidencyGuard(POLICY, stores, sink)


def test_the_shipped_policy_keeps_eu_customers_in_the_eu() -> None:
    policy = load_residency()
    assert policy.regions == ("eu", "us")
    assert policy.allowed("acme-eu") == ("eu",)
    assert policy.allowed("clinic-us") == ("us",)
    assert policy.allowed("anyone-else") == policy.default_regions
    assert "Reviewed 20" in DEFAULT_RESIDENCY.read_text()


def test_a_region_the_customer_may_use_is_granted(
    guard: ResidencyGuard,
) -> None:
    assert guard.region_for("acme-eu", "eu") == "eu"
    assert guard.region_for("acme-eu", None) == "eu"
    assert guard.region_for("demo", None) == "us"  # the default's first
    assert guard.region_for("demo", "eu") == "eu"


def test_a_region_the_customer_may_not_use_is_refused_and_audited(
    guard: ResidencyGuard, sink: ListSink,
) -> None:
    with pytest.raises(RegionNotAllowedError) as refused:
        guard.region_for("acme-eu", "us")
    assert str(refused.value) == (
        "customer acme-eu may not keep data in region us; allowed: eu")
    with pytest.raises(RegionNotAllowedError,
                       match="nowhere may not keep data in region "
                             r"\(none\); allowed: none"):
        guard.region_for("nowhere", None)
    with pytest.raises(RegionNotAllowedError,
                       match="region ap; allowed: us, eu"):
        guard.region_for("demo", "ap")
    first = sink.events[0]
    assert (first.action, first.outcome, first.owner, first.reason) == (
        Action.RESIDENCY_REFUSED, Outcome.FAILURE, "acme-eu",
        "region us: allowed: eu")
    assert len(sink.events) == 3


def test_an_allowed_region_without_a_store_is_refused(
    stores: dict[str, RegionalStore],
) -> None:
    guard = ResidencyGuard(POLICY, {"eu": stores["eu"]})
    with pytest.raises(RegionNotAllowedError,
                       match="customer clinic-us may not keep data in "
                             "region us; it has no store configured"):
        guard.region_for("clinic-us", "us")


def test_objects_land_only_in_their_own_region(
    guard: ResidencyGuard, stores: dict[str, RegionalStore],
) -> None:
    kept = guard.store(audio("acme-eu", region="eu"),
                       transcript("clinic-us", region="us"))
    assert [s.region for s in kept] == ["eu", "us"]
    assert [s.owner for s in stores["eu"].listing()] == ["acme-eu"]
    assert [s.owner for s in stores["us"].listing()] == ["clinic-us"]


def test_an_eu_only_customer_is_refused_the_us_and_nothing_is_written(
    guard: ResidencyGuard, stores: dict[str, RegionalStore],
) -> None:
    with pytest.raises(RegionNotAllowedError, match="allowed: eu"):
        guard.store(audio("acme-eu", region="eu"),
                    audio("acme-eu", region="us", stream_id="st_2"))
    assert stores["eu"].listing() == []  # checked before any write
    assert stores["us"].listing() == []


def test_a_full_eu_store_refuses_rather_than_spill_into_the_us(
    guard: ResidencyGuard, stores: dict[str, RegionalStore],
) -> None:
    guard.store(audio("acme-eu", region="eu"),
                audio("acme-eu", region="eu", stream_id="st_2"))
    with pytest.raises(RegionFullError, match="region eu is full"):
        guard.store(audio("acme-eu", region="eu", stream_id="st_3"))
    # A customer the US would be allowed for is refused too: the guard
    # never picks another region for an item that names its own.
    with pytest.raises(RegionFullError, match="region eu is full"):
        guard.store(audio("demo", region="eu", stream_id="st_4"))
    assert len(stores["eu"].listing()) == 2
    assert stores["us"].listing() == []
    assert stores["us"].used_bytes() == 0


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "residency.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "why"), [
    ("regions = [", "residency.toml: "),
    ("default_regions = []", "regions must be a list of region names"),
    ("regions = []", "regions must name at least one"),
    ('regions = ["eu", "eu"]', "regions names a region twice"),
    ('regions = ["eu"]\ndefault_regions = ["us"]',
     "default_regions names us, not one of the regions (eu)"),
    ('regions = ["eu"]\ncustomers = 1', "customers must be a table"),
    ('regions = ["eu"]\n[customers.a]\nzone = 1',
     "customers.a.regions must be a list of region names"),
    ('regions = ["eu"]\n[customers]\na = 1',
     "customers.a.regions is missing"),
    ('regions = ["eu"]\n[customers.a]\nregions = ["us"]',
     "customers.a.regions names us, not one of the regions"),
])
def test_a_broken_residency_file_is_refused_with_the_reason(
    tmp_path: Path, text: str, why: str,
) -> None:
    with pytest.raises(ResidencyError, match=re.escape(why)):
        load_residency(write(tmp_path, text))


def test_a_missing_residency_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ResidencyError, match="No such file"):
        load_residency(tmp_path / "absent.toml")
