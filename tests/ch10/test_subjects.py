"""A subject's export, erasure and status, across two regions.

Every test runs on SQLite and on PostgreSQL: a control database
(consents, stream records, requests), chapter 8's usage ledger, and
one database per region (eu, us). Alice has streams in both regions;
Bob (same customer) and another customer's Alice must come through
her erasure untouched. A crash is an exception injected between two
regions' erasures, or just after one region's commit.
"""

from __future__ import annotations

import json
import wave
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)
from sqlalchemy import Engine, func, select

from ch07_api import database
from ch08_metering.schema import metadata as ledger_metadata
from ch08_metering.schema import usage_events
from ch09_security.vault import UnknownObjectError
from ch10_compliance.audit_event import Action, Outcome
from ch10_compliance.consent import ConsentLedger, Purpose
from ch10_compliance.processing import ProcessingRecords
from ch10_compliance.regional_store import Deletion, RegionalStore
from ch10_compliance.signer import Signer
from ch10_compliance.subject_requests import (
    DAY_MS,
    Law,
    RequestKind,
    SubjectRequests,
)
from ch10_compliance.subjects import (
    NOT_CONFIGURED,
    SubjectService,
    UnknownSubjectError,
    subject_folder,
    verify_receipt,
)
from tests.ch10.store_fixtures import (
    AUDIO,
    NOON,
    WORDS,
    ListSink,
    ManualClock,
    audio,
    open_store,
    transcript,
)


def ref(owner: str, subject: str) -> str:
    """The audit log's name for a subject (a keyed hash in service)."""
    return "subj_" + sha256(f"{owner}/{subject}".encode()).hexdigest()[:20]


@dataclass
class World:
    service: SubjectService
    sink: ListSink
    clock: ManualClock
    eu: RegionalStore
    us: RegionalStore
    consent: ConsentLedger
    processing: ProcessingRecords
    requests: SubjectRequests
    ledger: Engine
    signer: Signer

    def actions(self) -> list[str]:
        return [str(event.action) for event in self.sink.events]


@pytest.fixture
def world(databases: dict[str, str], tmp_path: Path) -> Iterator[World]:
    clock, sink = ManualClock(), ListSink()
    control = database.open_engine(databases["control"])
    ledger = database.open_engine(databases["ledger"])
    ledger_metadata.create_all(ledger)
    consent = ConsentLedger(control, clock, sink)
    processing = ProcessingRecords(control, clock)
    requests = SubjectRequests(control, clock)
    for store in (consent, processing, requests):
        store.create_schema()
    eu = open_store(databases["eu"], "eu", clock)
    us = open_store(databases["us"], "us", clock)
    signer = Signer(Ed25519PrivateKey.generate())
    service = SubjectService(
        {"eu": eu, "us": us}, consent, processing, requests, sink, signer,
        clock, tmp_path / "exports", ledger, refs=ref)
    yield World(service, sink, clock, eu, us, consent, processing,
                requests, ledger, signer)
    for engine in (control, ledger, eu.engine, us.engine):
        engine.dispose()


def keep_stream(world: World, stream_id: str, region: str = "eu",
                owner: str = "acme", subject: str = "alice") -> list[str]:
    """A stream of `subject` kept in `region`: its audio and transcript
    stored, its processing recorded, two usage events billed."""
    world.processing.record(owner, subject, stream_id, region)
    store = world.eu if region == "eu" else world.us
    kept = store.put(audio(owner, subject, region, stream_id),
                     transcript(owner, subject, region, stream_id))
    with world.ledger.begin() as connection:
        connection.execute(usage_events.insert(), [
            {"customer": owner, "source": "urn:test", "meter": "seconds",
             "id": f"{stream_id}-{n}", "value": 30, "features": "",
             "stream_id": stream_id, "event_time_ms": NOON,
             "accepted_at_ms": NOON, "body": "{}"} for n in range(2)])
    return [stored.object_id for stored in kept]


def usage_rows(world: World) -> int:
    with world.ledger.connect() as connection:
        return int(connection.scalar(
            select(func.count()).select_from(usage_events)) or 0)


def alice_and_neighbours(world: World) -> dict[str, list[str]]:
    """Alice in both regions, Bob beside her, another customer's Alice."""
    world.consent.grant("acme", "alice", Purpose.TRANSCRIPTION)
    world.consent.grant("acme", "alice", Purpose.RETENTION)
    world.consent.grant("acme", "bob", Purpose.RETENTION)
    return {"alice": keep_stream(world, "st_a1", "eu")
            + keep_stream(world, "st_a2", "us"),
            "bob": keep_stream(world, "st_b1", "eu", subject="bob"),
            "globex": keep_stream(world, "st_g1", "eu", owner="globex")}


def read_archive(path: Path) -> tuple[zipfile.ZipFile, dict[str, Any]]:
    archive = zipfile.ZipFile(path)
    return archive, json.loads(archive.read("manifest.json"))


# ----- export -----

def test_export_is_a_zip_whose_manifest_hashes_every_file(
        world: World) -> None:
    ids = alice_and_neighbours(world)
    result = world.service.export("acme", "alice", Law.GDPR)

    archive, manifest = read_archive(result.path)
    assert archive.testzip() is None
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == set(archive.namelist()) - {"manifest.json"}
    for name, entry in listed.items():
        data = archive.read(name)
        assert entry["sha256"] == sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    eu_audio, eu_text = ids["alice"][0], ids["alice"][1]
    assert archive.read(f"recordings/{eu_audio}.linear16") == AUDIO
    assert archive.read(f"transcripts/{eu_text}.txt") == WORDS
    assert manifest["counts"] == {
        "recordings": 2, "transcripts": 2, "unreadable": 0,
        "streams": 2, "consents": 2, "requests": 1, "usage_events": 4}
    assert manifest["schema_version"] == 1
    assert (manifest["owner"], manifest["subject"]) == ("acme", "alice")
    assert {e["what"] for e in manifest["excluded"]} >= {"inferred data"}


def test_export_holds_recordings_transcripts_consents_and_usage(
        world: World) -> None:
    ids = alice_and_neighbours(world)
    result = world.service.export("acme", "alice", Law.GDPR)
    archive, _ = read_archive(result.path)

    with wave.open(archive.open(
            f"recordings/{ids['alice'][2]}.wav")) as wav:
        assert (wav.getframerate(), wav.getsampwidth()) == (16_000, 2)
        assert wav.readframes(wav.getnframes()) == AUDIO
    about = json.loads(archive.read(f"recordings/{ids['alice'][2]}.json"))
    assert about["region"] == "us" and about["stream_id"] == "st_a2"
    consents = json.loads(archive.read("consents.json"))
    assert [(c["purpose"], c["granted"]) for c in consents] == [
        ("transcription", True), ("retention", True)]
    usage = json.loads(archive.read("usage.json"))
    assert {u["stream_id"] for u in usage} == {"st_a1", "st_a2"}
    streams = json.loads(archive.read("streams.json"))
    assert [s["stream_id"] for s in streams] == ["st_a1", "st_a2"]
    requests = json.loads(archive.read("requests.json"))
    assert [r["request_id"] for r in requests] == [result.request_id]
    # Nobody else's objects: not Bob's, not the other customer's Alice.
    names = " ".join(archive.namelist())
    assert not any(i in names for i in ids["bob"] + ids["globex"])


def test_export_is_audited_and_completes_its_request(
        world: World) -> None:
    alice_and_neighbours(world)
    world.sink.events.clear()
    result = world.service.export("acme", "alice", Law.CCPA)
    assert world.actions() == ["subject.request_received", "data.read",
                               "data.read", "subject.exported"]
    reads = [e for e in world.sink.events if e.action == Action.DATA_READ]
    assert {e.details["region"] for e in reads} == {"eu", "us"}
    exported = world.sink.events[-1]
    assert exported.target == ref("acme", "alice")
    assert exported.details["request_id"] == result.request_id
    assert exported.details["recordings"] == 2
    request = world.requests.get(result.request_id)
    assert request.completed_at_ms == world.clock.now_ms
    assert request.law is Law.CCPA


def test_export_says_when_no_usage_ledger_is_configured(
        world: World) -> None:
    alice_and_neighbours(world)
    world.service.ledger_engine = None
    result = world.service.export("acme", "alice", Law.GDPR)
    archive, manifest = read_archive(result.path)
    assert manifest["usage"] == NOT_CONFIGURED
    assert "usage.json" not in archive.namelist()
    assert "usage_events" not in manifest["counts"]


def test_export_describes_a_shredded_object_without_content(
        world: World) -> None:
    eu_audio, _ = keep_stream(world, "st_a1", "eu")
    scope = world.eu.info(eu_audio).key_scope
    with world.eu.engine.begin() as connection:
        world.eu.ring.destroy(connection, scope)
    result = world.service.export("acme", "alice", Law.GDPR)
    archive, manifest = read_archive(result.path)
    assert manifest["counts"]["unreadable"] == 1
    assert manifest["counts"]["transcripts"] == 1
    about = json.loads(archive.read(f"recordings/{eu_audio}.json"))
    assert about["readable"] is False
    assert f"recordings/{eu_audio}.linear16" not in archive.namelist()


def test_export_of_an_unknown_subject_is_refused_and_audited(
        world: World) -> None:
    keep_stream(world, "st_b1", subject="bob")
    with pytest.raises(UnknownSubjectError,
                       match="acme holds nothing about subject 'carol': "
                       r"no object in any region \(eu, us\)"):
        world.service.export("acme", "carol", Law.GDPR)
    failed = world.sink.events[-1]
    assert (failed.action, failed.outcome) == (Action.SUBJECT_EXPORTED,
                                               Outcome.FAILURE)
    assert failed.reason == "unknown subject"
    assert world.requests.for_subject("acme", "carol") == []


# ----- erasure -----

def test_erasure_reaches_every_region_and_signs_a_receipt(
        world: World) -> None:
    ids = alice_and_neighbours(world)
    exported = world.service.export("acme", "alice", Law.GDPR)
    receipt = world.service.erase("acme", "alice", Law.GDPR)

    body = receipt.body
    assert body["regions"] == {
        "eu": {"objects_deleted": 2, "keys_destroyed": 2},
        "us": {"objects_deleted": 2, "keys_destroyed": 2}}
    assert body["consents_withdrawn"] == 2
    assert body["processing_records_forgotten"] == 2
    assert body["cached_exports_deleted"] == 1
    assert body["usage_events"]["kept"] == 4
    assert body["usage_events"]["linkable"] is False
    assert "17(3)(b)" in body["usage_events"]["why_kept"]
    assert body["request_id"] == receipt.request_id
    assert verify_receipt(receipt.document, world.signer.public_key)
    assert verify_receipt(receipt.document, world.signer.public_key_text)

    for object_id in ids["alice"][:2]:
        with pytest.raises(UnknownObjectError):
            world.eu.read(object_id)
    assert world.us.listing("acme", "alice") == []
    assert not exported.path.exists()
    assert not subject_folder(world.service.exports_dir, "acme",
                              "alice").exists()
    assert not any(world.consent.allowed("acme", "alice", p)
                   for p in Purpose)
    assert not world.processing.known("acme", "alice")
    assert usage_rows(world) == 8  # kept for invoices, unlinked
    stored = world.requests.get(receipt.request_id)
    assert stored.receipt == receipt.document
    assert stored.kind is RequestKind.ERASURE


def test_erasure_leaves_other_subjects_and_owners_alone(
        world: World) -> None:
    ids = alice_and_neighbours(world)
    world.service.erase("acme", "alice", Law.GDPR)
    assert world.eu.read(ids["bob"][0]) == AUDIO
    assert world.eu.read(ids["globex"][1]) == WORDS
    assert world.processing.known("acme", "bob")
    assert world.processing.known("globex", "alice")
    assert world.consent.allowed("acme", "bob", Purpose.RETENTION)


def test_erasure_withdraws_consent_before_touching_a_store(
        world: World) -> None:
    alice_and_neighbours(world)
    world.sink.events.clear()
    receipt = world.service.erase("acme", "alice", Law.GDPR)
    assert world.actions() == [
        "subject.request_received", "consent.withdrawn",
        "consent.withdrawn", "data.deleted", "data.deleted",
        "subject.erased"]
    deleted = [e for e in world.sink.events
               if e.action == Action.DATA_DELETED]
    assert [(e.details["region"], e.details["objects"]) for e in deleted
            ] == [("eu", 2), ("us", 2)]
    erased = world.sink.events[-1]
    assert erased.details == {
        "request_id": receipt.request_id, "law": "gdpr", "regions": 2,
        "objects": 4, "keys_destroyed": 4}


def test_the_audit_log_never_names_the_subject(world: World) -> None:
    alice_and_neighbours(world)
    world.service.export("acme", "alice", Law.GDPR)
    world.service.erase("acme", "alice", Law.GDPR)
    ours = [e for e in world.sink.events
            if e.action.startswith(("subject.", "data."))]
    assert len(ours) == 8
    assert {e.target for e in ours} == {ref("acme", "alice")}
    assert not any("alice" in repr(e) for e in ours)


class CrashError(Exception):
    """The process dies here."""


def test_erasure_killed_half_way_is_finished_under_one_receipt(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    alice_and_neighbours(world)

    def killed(owner: str, subject: str) -> Deletion:
        raise CrashError
    monkeypatch.setattr(world.us, "erase_subject", killed)
    with pytest.raises(CrashError):
        world.service.erase("acme", "alice", Law.GDPR)
    assert world.eu.listing("acme", "alice") == []  # done before it died
    assert len(world.us.listing("acme", "alice")) == 2
    [pending] = world.requests.for_subject("acme", "alice")
    assert pending.completed_at_ms is None
    monkeypatch.undo()

    world.clock.advance(60_000)
    receipt = world.service.erase("acme", "alice", Law.GDPR)
    assert receipt.request_id == pending.request_id
    assert receipt.body["regions"] == {
        "eu": {"objects_deleted": 2, "keys_destroyed": 2},
        "us": {"objects_deleted": 2, "keys_destroyed": 2}}
    assert receipt.body["consents_withdrawn"] == 2  # not 2 + 0 twice
    assert world.us.listing("acme", "alice") == []
    assert world.actions().count("subject.erased") == 1
    assert world.actions().count("data.deleted") == 2  # once per region
    assert verify_receipt(receipt.document, world.signer.public_key)

    def must_not_run(owner: str, subject: str) -> Deletion:
        raise AssertionError("erased again")
    events = len(world.sink.events)
    for store in (world.eu, world.us):
        monkeypatch.setattr(store, "erase_subject", must_not_run)
    world.clock.advance(60_000)
    again = world.service.erase("acme", "alice", Law.GDPR)
    assert again == receipt
    assert len(world.sink.events) == events
    assert len(world.requests.for_subject("acme", "alice")) == 1


def test_rows_deleted_by_a_killed_run_are_counted_and_audited_once(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    alice_and_neighbours(world)
    real = world.eu.erase_subject

    def committed_then_killed(owner: str, subject: str) -> Deletion:
        real(owner, subject)
        raise CrashError
    monkeypatch.setattr(world.eu, "erase_subject", committed_then_killed)
    with pytest.raises(CrashError):
        world.service.erase("acme", "alice", Law.GDPR)
    assert world.actions().count("data.deleted") == 0
    monkeypatch.undo()

    receipt = world.service.erase("acme", "alice", Law.GDPR)
    assert receipt.body["regions"]["eu"]["objects_deleted"] == 2
    deleted = [e for e in world.sink.events
               if e.action == Action.DATA_DELETED]
    assert [(e.details["region"], e.details["objects"]) for e in deleted
            ] == [("eu", 2), ("us", 2)]
    assert world.eu.unaudited() == []


def test_erasure_of_an_unknown_subject_is_refused_and_audited(
        world: World) -> None:
    alice_and_neighbours(world)
    with pytest.raises(UnknownSubjectError,
                       match=r"acme holds nothing about subject 'carol'.*"
                       "no consent given or withdrawn, no stream "
                       "recorded; check the id"):
        world.service.erase("acme", "carol", Law.GDPR)
    failed = world.sink.events[-1]
    assert (failed.action, failed.outcome, failed.target) == (
        Action.SUBJECT_ERASED, Outcome.FAILURE, ref("acme", "carol"))
    assert world.requests.for_subject("acme", "carol") == []
    # Another customer's subject of that name is unknown to acme too.
    with pytest.raises(UnknownSubjectError):
        world.service.erase("acme", "dave", Law.GDPR)
    keep_stream(world, "st_d1", owner="globex", subject="dave")
    with pytest.raises(UnknownSubjectError):
        world.service.erase("acme", "dave", Law.GDPR)


def test_a_subject_known_only_by_consent_can_be_erased(
        world: World) -> None:
    world.consent.grant("acme", "erin", Purpose.TRANSCRIPTION)
    receipt = world.service.erase("acme", "erin", Law.CCPA)
    assert receipt.body["consents_withdrawn"] == 1
    assert receipt.body["regions"]["eu"]["objects_deleted"] == 0
    assert "1798.105" in receipt.body["usage_events"]["why_kept"]


def test_new_data_after_an_erasure_needs_a_new_one(world: World) -> None:
    alice_and_neighbours(world)
    first = world.service.erase("acme", "alice", Law.GDPR)
    world.clock.advance(3_600_000)
    world.consent.grant("acme", "alice", Purpose.RETENTION)
    keep_stream(world, "st_a3", "us")
    second = world.service.erase("acme", "alice", Law.GDPR)
    assert second.request_id != first.request_id
    assert second.body["regions"]["us"]["objects_deleted"] == 2
    assert world.service.erase("acme", "alice", Law.GDPR) == second


def test_receipt_without_a_ledger_says_usage_is_not_configured(
        world: World) -> None:
    alice_and_neighbours(world)
    world.service.ledger_engine = None
    receipt = world.service.erase("acme", "alice", Law.GDPR)
    assert receipt.body["usage_events"] == {"store": NOT_CONFIGURED}


def test_a_tampered_receipt_fails_verification(world: World) -> None:
    alice_and_neighbours(world)
    receipt = world.service.erase("acme", "alice", Law.GDPR)
    parsed = json.loads(receipt.document)
    parsed["receipt"]["regions"]["us"]["objects_deleted"] = 0
    assert not verify_receipt(json.dumps(parsed), world.signer.public_key)
    parsed = json.loads(receipt.document)
    parsed["signature"] = parsed["signature"][::-1]
    assert not verify_receipt(json.dumps(parsed), world.signer.public_key)
    other = Signer(Ed25519PrivateKey.generate())
    assert not verify_receipt(receipt.document, other.public_key)
    assert not verify_receipt("not json", world.signer.public_key)
    assert not verify_receipt(receipt.document, "not a key")


# ----- status -----

def test_status_shows_each_request_with_its_deadline(
        world: World) -> None:
    alice_and_neighbours(world)
    export = world.service.export("acme", "alice", Law.GDPR)
    world.clock.advance(1)
    opened = world.requests.open("acme", "alice", RequestKind.PORTABILITY,
                                 Law.CCPA)
    world.clock.advance(46 * DAY_MS)
    status = world.service.status("acme", "alice")
    assert [s.request.request_id for s in status] == [
        export.request_id, opened.request_id]
    assert (status[0].days_left, status[0].overdue) == (None, False)
    assert (status[1].days_left, status[1].overdue) == (-1, True)
