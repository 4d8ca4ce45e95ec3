"""`python -m ch10_compliance subject ...`, run in this process.

Each command runs on the test's own databases (SQLite and PostgreSQL:
control, ledger, eu, us) with the keys in the environment, and its
audit events land in a list. The data it works on is put there first
through the stores themselves, as the service would have.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ch07_api import database
from ch08_metering.schema import metadata as ledger_metadata
from ch10_compliance import subjects_cli
from ch10_compliance.audit_event import Action, AuditSink, Outcome
from ch10_compliance.consent import ConsentLedger, Purpose
from ch10_compliance.processing import ProcessingRecords
from ch10_compliance.regional_store import RegionalStore
from ch10_compliance.signer import new_seed, signer_from_seed
from ch10_compliance.subject_requests import (
    Law,
    RequestKind,
    SubjectRequests,
)
from ch10_compliance.subjects import verify_receipt
from tests.ch10 import test_subjects
from tests.ch10.store_fixtures import (
    DAY_MS,
    MASTER,
    NOON,
    ListSink,
    ManualClock,
    audio,
    open_store,
    transcript,
)

# The real ones, before any test's stand-in.
AUDIT_LOG, SUBJECT_REFS = subjects_cli.audit_log, subjects_cli.subject_refs
SEED = new_seed()
PUBLIC_KEY = signer_from_seed(SEED, "test").public_key
Command = Callable[..., tuple[int, str, str]]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ch10_compliance")
    commands = parser.add_subparsers(dest="command", required=True)
    subjects_cli.add_parser(commands, "subject")
    return subjects_cli.run(parser.parse_args(argv))


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def subject(databases: dict[str, str], tmp_path: Path, sink: ListSink,
            clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Command:
    """`subject ACTION ARGS...` on the test's databases, at the test's
    time: exit code, stdout and stderr."""
    monkeypatch.setattr(subjects_cli, "now_ms", clock)
    monkeypatch.setenv("REGION_STORES", " ".join(
        f"{region}={databases[region]}" for region in ("eu", "us")))
    monkeypatch.setenv("AUDIO_MASTER_KEY", base64.b64encode(MASTER).decode())
    monkeypatch.setenv("AUDIT_SIGNING_KEY", SEED)
    monkeypatch.delenv("REGION_CAPACITY_BYTES", raising=False)

    @contextmanager
    def listed(url: str | None) -> Iterator[AuditSink]:
        assert url == databases["control"]  # the log is the control DB's
        yield sink
    monkeypatch.setattr(subjects_cli, "audit_log", listed)
    monkeypatch.setattr(subjects_cli, "subject_refs",
                        lambda env: test_subjects.ref)

    def run(action: str, *args: str, ledger: bool = True) -> tuple[
            int, str, str]:
        where = ["--database-url", databases["control"],
                 "--exports-dir", str(tmp_path / "exports")]
        if ledger:
            where += ["--ledger-url", databases["ledger"]]
        code = main(["subject", action, *args, *where])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


@pytest.fixture
def regions(databases: dict[str, str]) -> Iterator[dict[str, RegionalStore]]:
    stores = {region: open_store(databases[region], region, ManualClock())
              for region in ("eu", "us")}
    yield stores
    for store in stores.values():
        store.engine.dispose()


@pytest.fixture
def control(databases: dict[str, str]) -> Iterator[ProcessingRecords]:
    records = ProcessingRecords(database.open_engine(databases["control"]),
                                ManualClock())
    records.create_schema()
    ledger = database.open_engine(databases["ledger"])
    ledger_metadata.create_all(ledger)
    ledger.dispose()
    yield records
    records.engine.dispose()


def keep(regions: dict[str, RegionalStore], records: ProcessingRecords,
         stream_id: str, region: str, subject: str = "alice") -> None:
    records.record("acme", subject, stream_id, region)
    regions[region].put(audio(subject=subject, region=region,
                              stream_id=stream_id),
                        transcript(subject=subject, region=region,
                                   stream_id=stream_id))


@pytest.fixture
def alice(regions: dict[str, RegionalStore],
          control: ProcessingRecords) -> None:
    keep(regions, control, "st_a1", "eu")
    keep(regions, control, "st_a2", "us")
    keep(regions, control, "st_b1", "eu", subject="bob")


@pytest.mark.usefixtures("alice")
def test_export_prints_the_archive_and_its_counts(
        subject: Command, sink: ListSink) -> None:
    code, out, err = subject("export", "alice", "--owner", "acme")
    assert (code, err) == (0, "")
    summary, path = out.splitlines()
    assert re.match(r"acme/alice \(sr_[0-9a-f]{16}\): 2 recordings, "
                    r"2 transcripts, 0 unreadable, 2 streams, 0 consents, "
                    r"1 requests, 0 usage_events$", summary)
    assert Path(path).is_file() and path.endswith(".zip")
    exported = sink.events[-1]
    assert exported.action == Action.SUBJECT_EXPORTED
    assert exported.actor.startswith("operator:")


@pytest.mark.usefixtures("alice")
def test_export_without_a_ledger_says_so(subject: Command) -> None:
    code, out, _ = subject("export", "alice", "--owner", "acme",
                           ledger=False)
    assert code == 0
    assert "; usage not configured: no usage ledger was given " \
        "(LEDGER_URL)" in out


@pytest.mark.usefixtures("alice")
def test_erase_prints_a_receipt_the_public_key_verifies(
        subject: Command, regions: dict[str, RegionalStore],
        sink: ListSink) -> None:
    code, out, err = subject("erase", "alice", "--owner", "acme",
                             "--law", "ccpa")
    assert code == 0
    assert re.match(r"acme/alice erased \(sr_[0-9a-f]{16}\): 4 objects in "
                    r"2 regions; the signed receipt follows$", err.strip())
    assert verify_receipt(out, PUBLIC_KEY)
    body = json.loads(out)["receipt"]
    assert (body["law"], body["usage_events"]["kept"]) == ("ccpa", 0)
    assert regions["eu"].listing("acme", "alice") == []
    assert len(regions["eu"].listing("acme", "bob")) == 2
    assert sink.events[-1].action == Action.SUBJECT_ERASED

    again, repeated, _ = subject("erase", "alice", "--owner", "acme")
    assert (again, repeated) == (0, out)  # one receipt


def test_erase_of_an_unknown_subject_fails_clearly(
        subject: Command, sink: ListSink) -> None:
    code, out, err = subject("erase", "nobody", "--owner", "acme")
    assert (code, out) == (1, "")
    assert err.startswith("error: acme holds nothing about subject "
                          "'nobody': no object in any region (eu, us)")
    assert sink.events[-1].outcome is Outcome.FAILURE


@pytest.mark.usefixtures("alice")
def test_status_lists_deadlines_and_what_is_overdue(
        subject: Command, databases: dict[str, str]) -> None:
    code, out, _ = subject("status", "alice", "--owner", "acme")
    assert (code, out) == (0, "acme/alice: no requests\n")

    engine = database.open_engine(databases["control"])
    late = SubjectRequests(engine, ManualClock(NOON - 40 * DAY_MS)).open(
        "acme", "alice", RequestKind.ERASURE, Law.GDPR)
    ccpa = SubjectRequests(engine, ManualClock(NOON - DAY_MS)).open(
        "acme", "alice", RequestKind.ACCESS, Law.CCPA)
    SubjectRequests(engine, ManualClock(NOON)).extend(
        ccpa.request_id, "identity check")
    engine.dispose()
    subject("export", "alice", "--owner", "acme")

    code, out, _ = subject("status", "alice", "--owner", "acme")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[0] == (
        f"{late.request_id}  erasure      gdpr  received "
        "2026-04-17T12:00:00Z  due 2026-05-17T12:00:00Z  OVERDUE by "
        "10 days")
    assert lines[1] == (
        f"{ccpa.request_id}  access       ccpa  received "
        "2026-05-26T12:00:00Z  due 2026-08-24T12:00:00Z (extended: "
        "identity check)  89 days left")
    assert lines[2].endswith("  access       gdpr  received "
                             "2026-05-27T12:00:00Z  due "
                             "2026-06-27T12:00:00Z  completed "
                             "2026-05-27T12:00:00Z")


def test_consent_withdrawn_mid_stream_is_what_a_keeper_must_check(
        subject: Command, databases: dict[str, str],
        clock: ManualClock) -> None:
    """A stream that started under consent, withdrawn and granted again
    before it ended: consent holds now, but not throughout the stream,
    so nothing of it may be kept."""
    change = ("alice", "--owner", "acme", "--purpose", "retention")
    assert subject("consent", "grant", *change)[:2] == (
        0, "acme/alice: retention granted\n")
    stream_started = clock.now_ms + 1_000
    clock.advance(2_000)  # mid-stream
    assert subject("consent", "withdraw", *change)[:2] == (
        0, "acme/alice: retention withdrawn\n")
    clock.advance(1_000)
    assert subject("consent", "grant", *change)[0] == 0

    engine = database.open_engine(databases["control"])
    ledger = ConsentLedger(engine, clock)
    assert ledger.allowed("acme", "alice", Purpose.RETENTION)
    assert not ledger.allowed_throughout("acme", "alice",
                                         Purpose.RETENTION, stream_started)
    # A stream started after the new grant may be kept.
    assert ledger.allowed_throughout("acme", "alice", Purpose.RETENTION,
                                     clock.now_ms)
    engine.dispose()


def test_consent_changes_are_audited_as_the_operator(
        subject: Command, sink: ListSink) -> None:
    code, _, _ = subject("consent", "grant", "alice", "--owner", "acme",
                         "--purpose", "model_improvement")
    assert code == 0
    granted = sink.events[-1]
    assert granted.action == Action.CONSENT_GRANTED
    assert granted.actor.startswith("operator:")
    assert granted.details == {"purpose": "model_improvement"}


def test_an_operator_without_a_login_name_is_still_named(
        subject: Command, sink: ListSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_login() -> str:
        raise OSError("No username set in the environment")
    monkeypatch.setattr(getpass, "getuser", no_login)
    subject("consent", "grant", "alice", "--owner", "acme",
            "--purpose", "retention")
    assert sink.events[-1].actor == "operator:unknown"


@pytest.mark.usefixtures("alice")
def test_commands_write_to_the_control_databases_audit_log(
        subject: Command, databases: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    audit = pytest.importorskip("ch10_compliance.audit")
    refs = pytest.importorskip("ch10_compliance.subject_ref")
    secret = "k" * 32
    monkeypatch.setenv("KEY_HASH_SECRET", secret)
    monkeypatch.setattr(subjects_cli, "audit_log", AUDIT_LOG)
    monkeypatch.setattr(subjects_cli, "subject_refs", SUBJECT_REFS)
    code, _, _ = subject("erase", "alice", "--owner", "acme")
    assert code == 0
    log = audit.open_audit_log(databases["control"])
    entries = json.dumps([str(entry) for entry in log.entries()])
    alice = refs.SubjectRefs(secret.encode())("acme", "alice")
    assert "subject.erased" in entries and alice in entries
    log.engine.dispose()


def test_bad_arguments_are_refused(
        subject: Command, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        subject("erase", "alice", "--owner", "acme", "--law", "hipaa")
    assert exit_info.value.code == 2
    assert "invalid choice: 'hipaa'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        subject("consent", "grant", "alice", "--owner", "acme",
                "--purpose", "marketing")
    assert "invalid choice: 'marketing'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        subject("export", "alice")
    assert "--owner" in capsys.readouterr().err


def test_an_unusable_master_key_is_a_configuration_error(
        subject: Command, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIO_MASTER_KEY", "not base64!")
    code, out, err = subject("status", "alice", "--owner", "acme")
    assert (code, out) == (2, "")
    assert err == "error: AUDIO_MASTER_KEY is not base64\n"
