"""The keeper of governed streams: consent held throughout or nothing
kept, the admitted region only, a full store refused and audited, the
retention deadline set from the policy."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine

from ch09_security.recording_keeper import Recording
from ch09_security.stream_owner import StreamOwner
from ch10_compliance.audit_event import Action, Outcome
from ch10_compliance.consent import ConsentLedger, Purpose
from ch10_compliance.data_classes import DataClass
from ch10_compliance.governance_hooks import GovernedStream
from ch10_compliance.governed_keeper import GovernedKeeper
from ch10_compliance.regional_store import RegionalStore
from ch10_compliance.residency import ResidencyGuard, ResidencyPolicy
from ch10_compliance.subject_ref import SubjectRefs
from tests.ch10.store_fixtures import (
    AUDIO,
    DAY_MS,
    ListSink,
    ManualClock,
    open_stores,
)

POLICY = ResidencyPolicy(regions=("eu", "us"), default_regions=("us",),
                         customers={"acme-eu": ("eu",)})
KEEP = {DataClass.AUDIO: 30 * DAY_MS, DataClass.TRANSCRIPT: 7 * DAY_MS}
OWNER = StreamOwner("st_1", "acme-eu", "key_1")
RECORDING = Recording("acme-eu", "st_1", "linear16", 16_000, AUDIO,
                      ("hello there",), False, False)


@pytest.fixture
def stores(region_urls: dict[str, str], clock: ManualClock
           ) -> Iterator[dict[str, RegionalStore]]:
    yield from open_stores(region_urls, clock, len(AUDIO))


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def consent(clock: ManualClock, sink: ListSink) -> ConsentLedger:
    ledger = ConsentLedger(create_engine("sqlite://"), clock, sink)
    ledger.create_schema()
    return ledger


@pytest.fixture
def keeper(stores: dict[str, RegionalStore], consent: ConsentLedger,
           sink: ListSink, clock: ManualClock) -> GovernedKeeper:
    return GovernedKeeper(ResidencyGuard(POLICY, stores, sink), consent,
                          sink, SubjectRefs(b"k" * 32), KEEP, clock)


def stream(clock: ManualClock) -> GovernedStream:
    return GovernedStream(OWNER, "alice", "eu", True, clock.now_ms)


def stored(sink: ListSink) -> list[tuple[Outcome, str]]:
    return [(e.outcome, e.reason) for e in sink.events
            if e.action == Action.DATA_STORED]


def test_kept_in_its_region_until_its_class_expires(
        keeper: GovernedKeeper, consent: ConsentLedger,
        stores: dict[str, RegionalStore], clock: ManualClock,
        sink: ListSink) -> None:
    consent.grant("acme-eu", "alice", Purpose.RETENTION)
    small = Recording("acme-eu", "st_1", "linear16", 16_000, AUDIO[:100],
                      ("hi",), False, False)
    keeper.store(small, stream(clock))
    kept = {o.data_class: o for o in stores["eu"].listing()}
    assert kept[DataClass.AUDIO].expires_at_ms == clock.now_ms + KEEP[
        DataClass.AUDIO]
    assert kept[DataClass.TRANSCRIPT].expires_at_ms == clock.now_ms + KEEP[
        DataClass.TRANSCRIPT]
    assert stores["eu"].read(kept[DataClass.AUDIO].object_id) == AUDIO[:100]
    assert stores["us"].listing() == []
    assert stored(sink) == [(Outcome.SUCCESS, "")]
    [event] = [e for e in sink.events if e.action == Action.DATA_STORED]
    assert event.details["objects"] == 2
    assert event.details["subject"] == keeper.refs("acme-eu", "alice")


def test_without_consent_nothing_is_kept(
        keeper: GovernedKeeper, stores: dict[str, RegionalStore],
        clock: ManualClock, sink: ListSink) -> None:
    keeper.store(RECORDING, stream(clock))
    assert stores["eu"].listing() == []
    assert stored(sink) == [(Outcome.FAILURE, "consent to retention was "
                             "withdrawn during the stream")]


def test_a_full_region_refuses_and_nothing_lands_elsewhere(
        keeper: GovernedKeeper, consent: ConsentLedger,
        stores: dict[str, RegionalStore], clock: ManualClock,
        sink: ListSink, caplog: pytest.LogCaptureFixture) -> None:
    consent.grant("acme-eu", "alice", Purpose.RETENTION)
    with caplog.at_level(logging.WARNING, "ch10_compliance"):
        keeper.store(RECORDING, stream(clock))  # audio + text > capacity
    assert stores["eu"].listing() == [] and stores["us"].listing() == []
    [(outcome, reason)] = stored(sink)
    assert outcome is Outcome.FAILURE and "eu" in reason
    assert "event=retention_refused" in caplog.text


def test_a_region_the_owner_may_not_use_is_refused(
        keeper: GovernedKeeper, consent: ConsentLedger,
        stores: dict[str, RegionalStore], clock: ManualClock,
        sink: ListSink) -> None:
    consent.grant("acme-eu", "alice", Purpose.RETENTION)
    keeper.store(RECORDING, GovernedStream(OWNER, "alice", "us", True,
                                           clock.now_ms))
    assert stores["us"].listing() == []
    [(outcome, reason)] = stored(sink)
    assert outcome is Outcome.FAILURE and "region us" in reason


async def test_a_stream_not_admitted_for_retention_keeps_nothing(
        keeper: GovernedKeeper, stores: dict[str, RegionalStore],
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "ch10_compliance"):
        keeper.keep(RECORDING)  # no governed stream in this context
    await asyncio.wait_for(keeper.settled(), 10)
    assert "reason=not_admitted_for_retention" in caplog.text
    assert stores["eu"].listing() == []
