"""The evidence checks, each able to fail, and the dated report.

Checks of stores built elsewhere in the chapter (the audit log, the
retention job, the regional stores) take what they look at as
arguments, so these tests hand them fakes; the encryption check reads
real rows, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, LargeBinary, MetaData, String, Table

from ch04_streaming.app import dialects
from ch04_streaming.dialects.dialect import (
    Dialect,
    StreamDefaults,
    StreamRequest,
)
from ch04_streaming.settings import Settings
from ch07_api import database
from ch09_security.envelope import seal
from ch09_security.recording_keeper import RecordingKeeper
from ch09_security.retaining_dialect import RetainingDialect
from ch10_compliance import evidence, evidence_cli
from ch10_compliance.evidence import (
    CheckResult,
    EvidenceReport,
    audit_chain_verifies,
    encryption_on,
    evidence_row,
    log_words,
    master_key_in_use,
    no_pii_in_logs,
    retention_ran,
    run_checks,
    write_report,
    zero_retention_by_default,
)
from ch10_compliance.matrix import load_matrix, parse_matrix
from ch10_compliance.signer import new_seed
from tests.databases import postgres_url  # noqa: F401 (a fixture)

NOW = 1_780_000_000_000  # 2026-05-28T20:26:40Z
DAY = 86_400_000
KEY = bytes(range(32))
KEY_TEXT = base64.b64encode(KEY).decode()
CHECKS = ("audit_chain_verifies", "retention_ran", "encryption_on",
          "zero_retention_by_default", "no_pii_in_logs")


# The runner ---------------------------------------------------------------


def test_a_check_that_raises_has_failed_and_is_named() -> None:
    def broken(url: str) -> CheckResult:
        raise RuntimeError(f"cannot reach {url}\n[parameters: secret]")

    ok = CheckResult("fine", True, "fine")
    results = run_checks([lambda: ok, partial(broken, "db")])
    assert results == [ok, CheckResult(
        "broken", False, "could not run: RuntimeError: cannot reach db")]


# Audit chain and retention, on fakes ----------------------------------------


@dataclass(frozen=True)
class Finding:
    message: str


@dataclass(frozen=True)
class Verification:
    ok: bool
    findings: Sequence[Finding] = ()
    size: int = 12
    checkpoints: int = 1


def test_the_audit_check_passes_only_a_log_that_verifies() -> None:
    verified = audit_chain_verifies(lambda: Verification(True))
    assert verified == CheckResult(
        "audit_chain_verifies", True,
        "the audit log verifies: 12 entries and 1 signed checkpoint")
    broken = audit_chain_verifies(lambda: Verification(False, [
        Finding("entry 7 was edited"),
        Finding("checkpoint of size 8 does not match the log")]))
    assert not broken.passed
    assert broken.detail == (
        "the audit log does not verify (12 entries and 1 signed "
        "checkpoint): 2 findings: entry 7 was edited; checkpoint of size "
        "8 does not match the log")
    assert not audit_chain_verifies(lambda: Verification(False)).passed


@dataclass(frozen=True)
class Run:
    finished_at_ms: int | None


@pytest.mark.parametrize(("finished", "passed", "said"), [
    (NOW - DAY, True, "finished 2026-05-27T20:26:40Z, 1.0 days ago"),
    (NOW - 2 * DAY, True, "2.0 days ago, limit 2"),
    (NOW - 2 * DAY - 1, False, "2.0 days ago, limit 2"),
    (NOW + 60_000, False, "in the future: a clock is wrong"),
    (None, False, "the last retention run started and never finished"),
])
def test_retention_must_have_finished_recently(
    finished: int | None, passed: bool, said: str,
) -> None:
    result = retention_ran(lambda: Run(finished), lambda: NOW, 2)
    assert (result.passed, result.name) == (passed, "retention_ran")
    assert said in result.detail


def test_no_retention_run_at_all_fails() -> None:
    result = retention_ran(lambda: None, lambda: NOW, 2)
    assert not result.passed
    assert result.detail == "no retention run is recorded"


# Encryption, on real rows -------------------------------------------------


@dataclass(frozen=True)
class Described:
    object_id: str
    size_bytes: int
    shredded: bool = False


@dataclass
class Store:
    """A regional store as the check sees it: a listing and rows."""

    region: str
    engine: Engine
    objects: list[Described] = field(default_factory=list)

    def listing(self) -> list[Described]:
        return self.objects


ROWS = Table("governed_objects", MetaData(),
             Column("object_id", String(40), primary_key=True),
             Column("wrapped_key", LargeBinary, nullable=True),
             Column("nonce", LargeBinary, nullable=True),
             Column("ciphertext", LargeBinary, nullable=False))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = database.open_engine(database_url)
    ROWS.create(engine)
    yield Store("eu", engine)
    engine.dispose()


def keep(store: Store, object_id: str, data: bytes, sealed: bool = True,
         wrapped: bool = True) -> None:
    parts = seal(data, KEY, object_id.encode())
    row = {"object_id": object_id, "nonce": parts.nonce,
           "wrapped_key": parts.wrapped_key if wrapped else None,
           "ciphertext": parts.ciphertext if sealed else data}
    with store.engine.begin() as connection:
        connection.execute(ROWS.insert().values(**row))
    store.objects.append(Described(object_id, len(data)))


def test_sealed_objects_pass_and_a_plaintext_one_is_named(
    store: Store,
) -> None:
    keep(store, "obj_1", b"audio" * 100)
    keep(store, "obj_2", b"")
    opened = partial(encryption_on, {"AUDIO_MASTER_KEY": KEY_TEXT})
    result = opened(lambda key: {"eu": store})
    assert result.passed, result.detail
    assert result.detail == ("master key from AUDIO_MASTER_KEY; every "
                             "object sealed (objects per region: eu 2)")
    keep(store, "obj_3", b"hello, this is plain", sealed=False)
    keep(store, "obj_4", b"audio", wrapped=False)
    result = opened(lambda key: {"eu": store})
    assert not result.passed
    assert result.detail == (
        "2 objects not sealed: eu obj_3: 20 bytes stored for 20 bytes of "
        "data: not sealed; eu obj_4: no wrapped data key and nonce")
    assert "hello" not in result.detail


def test_an_object_deleted_after_the_listing_is_no_finding(
    store: Store,
) -> None:
    keep(store, "obj_1", b"audio")
    store.objects.append(Described("obj_gone", 5))
    result = encryption_on({"AUDIO_MASTER_KEY": KEY_TEXT},
                           lambda key: {"eu": store})
    assert result.passed, result.detail


def test_the_stores_are_opened_with_the_master_key_and_closed(
    store: Store,
) -> None:
    opened_with: list[bytes] = []
    pool = store.engine.pool

    def open_stores(key: bytes) -> Mapping[str, Store]:
        opened_with.append(key)
        return {"eu": store}

    result = encryption_on({"AUDIO_MASTER_KEY": KEY_TEXT}, open_stores)
    assert result.passed
    assert opened_with == [KEY]
    # Disposed: SQLAlchemy closes the pool's connections, makes a new one.
    assert store.engine.pool is not pool


def test_no_stores_or_no_master_key_is_no_encryption(tmp_path: Path) -> None:
    result = encryption_on({"AUDIO_MASTER_KEY": KEY_TEXT}, lambda key: {})
    assert not result.passed
    assert result.detail == "no regional stores are configured"
    missing = tmp_path / "audio-master.key"
    [failed] = run_checks([partial(encryption_on, {}, lambda key: {},
                                   missing)])
    assert not failed.passed
    assert failed.detail == (
        "could not run: MasterKeyError: no master key: AUDIO_MASTER_KEY "
        f"is not set and {missing} does not exist")
    assert not missing.exists()  # a check never makes a key


def test_a_development_key_file_is_named_as_one(tmp_path: Path) -> None:
    key_file = tmp_path / "audio-master.key"
    key_file.write_text(KEY_TEXT + "\n")
    assert master_key_in_use({}, key_file) == (
        KEY, f"{key_file} (a development key file)")
    with pytest.raises(ValueError, match="AUDIO_MASTER_KEY is not base64"):
        master_key_in_use({"AUDIO_MASTER_KEY": "not base64!"}, key_file)


# Zero retention, through the service's own dialects --------------------------


def test_the_service_keeps_nothing_a_stream_did_not_ask_to_keep() -> None:
    result = zero_retention_by_default()
    assert result.passed, result.detail
    assert result.detail == (
        "3 dialects (/v1/listen, /v3/ws, /v1/realtime): streams that did"
        " not ask kept 0 objects; streams with retain=true kept 6"
        " (expected 6)")


class KeepingByDefault(RetainingDialect):
    """The defect the check exists for: retention as the default."""

    def parse(self, query: Mapping[str, str],
              defaults: StreamDefaults) -> StreamRequest:
        return super().parse({"retain": "true", **query}, defaults)


def test_a_service_that_keeps_by_default_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def keeping(settings: Settings,
                keeper: RecordingKeeper) -> dict[str, Dialect]:
        return {path: KeepingByDefault(dialect, keeper)
                for path, dialect in dialects(settings).items()}

    monkeypatch.setattr(evidence, "guarded_dialects", keeping)
    result = zero_retention_by_default()
    assert not result.passed
    assert "streams that did not ask kept 6 objects" in result.detail


def test_a_service_that_cannot_keep_at_all_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(evidence, "guarded_dialects",
                        lambda settings, keeper: dialects(settings))
    result = zero_retention_by_default()
    assert not result.passed
    assert "streams with retain=true kept 0 (expected 6)" in result.detail


# PII in logs --------------------------------------------------------------

CLEAN = """\
2026-12-06 22:28:57,123 INFO event=retained stream_id=s1 owner=acme \
bytes=3200000 at_ms=1780000000000
{"ts": 1780000000000, "event": "stream_end", "audio_bytes": 123456789}
2026-12-06 22:28:58,001 INFO event=closed code=1000 duration_ms=15230
"""
LEAKY = """\
2026-12-06 22:29:00,000 INFO event=final text="my card is four one one \
one one one one one one one one one one one one one"
2026-12-06 22:29:01,000 INFO event=ok
2026-12-06 22:29:02,000 INFO event=final text="call 555 867 5309 or \
jo@example.com"
{"event": "final", "text": "ssn 536 22 1234"}
"""


def test_numbers_the_code_formatted_are_not_speech() -> None:
    assert log_words('x bytes=3200000 "ts": 17, text="jo at') == [
        "x", "ts", "jo", "at"]


def test_clean_logs_pass_and_say_what_was_scanned(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_text(CLEAN)
    result = no_pii_in_logs([log])
    assert result.passed, result.detail
    assert result.detail == "1 file, 3 lines scanned: no PII found"


def test_pii_is_reported_by_place_and_kind_never_by_value(
    tmp_path: Path,
) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text(CLEAN)
    (tmp_path / "logs" / "b.log").write_text(LEAKY)
    result = no_pii_in_logs([tmp_path / "logs"])
    b = tmp_path / "logs" / "b.log"
    assert not result.passed
    assert result.detail == (
        f"2 files, 7 lines scanned: 4 findings: {b}:1 credit_card_number; "
        f"{b}:3 phone_number; {b}:3 email_address; "
        f"{b}:4 us_social_security_number")
    for value in ("4111", "four", "867", "jo@", "1234"):
        assert value not in result.detail


def test_no_logs_or_a_missing_log_is_no_evidence(tmp_path: Path) -> None:
    assert no_pii_in_logs([]).detail == (
        "no log files given: nothing was scanned")
    missing = no_pii_in_logs([tmp_path / "gone.log"])
    assert not missing.passed
    assert f"{tmp_path}/gone.log: no such file" in missing.detail


def test_a_long_list_of_findings_is_cut_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_text("mail jo@example.com\n" * 12)
    result = no_pii_in_logs([log])
    assert result.detail.endswith(f"{log}:10 email_address; and 2 more")


# The report ------------------------------------------------------------------

RESULTS = (CheckResult("encryption_on", True, "every object sealed"),
           CheckResult("retention_ran", False, "no run | recorded"))


def test_a_requirement_is_evidenced_only_by_checks_that_passed() -> None:
    [row] = parse_matrix({
        "reviewed": date(2026, 12, 6),
        "frameworks": [{"key": "gdpr", "name": "GDPR", "source": "R",
                        "nature": "Law."}],
        "requirements": [{
            "framework": "gdpr", "citation": "Art. 32",
            "requirement": "Security", "control": "AES-GCM | TLS",
            "status": "met", "files": ["a.py"], "tests": ["tests/a.py"],
            "evidence": ["encryption_on", "retention_ran",
                         "audit_chain_verifies"]}]}).requirements
    results = {r.name: r for r in RESULTS}
    assert evidence_row(row, results) == (
        "| gdpr Art. 32 | AES-GCM \\| TLS | met | `encryption_on` passed, "
        "`retention_ran` FAILED, `audit_chain_verifies` FAILED |")


def test_the_matrix_names_only_checks_that_exist() -> None:
    named = {name for r in load_matrix().requirements for name in r.evidence}
    assert named == set(CHECKS)


def test_the_report_is_written_dated_and_never_overwritten(
    tmp_path: Path,
) -> None:
    report = EvidenceReport(NOW, RESULTS, load_matrix())
    json_path, markdown_path = write_report(report, tmp_path)
    assert json_path == tmp_path / "2026-05-28" / "evidence-202640Z.json"
    assert markdown_path == json_path.with_suffix(".md")
    written = json.loads(json_path.read_text())
    assert written["generated_at"] == "2026-05-28T20:26:40Z"
    assert written["passed"] is False
    assert written["checks"][1] == {"name": "retention_ran",
                                    "passed": False,
                                    "detail": "no run | recorded"}
    art_32 = [r for r in written["requirements"]
              if (r["framework"], r["citation"]) == ("gdpr", "Art. 32")]
    assert art_32 == [{"framework": "gdpr", "citation": "Art. 32",
                       "status": "met",
                       "evidence": {"encryption_on": True,
                                    "audit_chain_verifies": False}}]
    text = markdown_path.read_text()
    assert "1 of 2 checks failed." in text
    assert "| `retention_ran` | FAILED | no run \\| recorded |" in text
    with pytest.raises(FileExistsError):
        write_report(report, tmp_path)


def test_a_report_of_passing_checks_says_so() -> None:
    report = EvidenceReport(NOW, RESULTS[:1], load_matrix())
    assert report.passed
    assert "All 1 checks passed." in report.markdown()


# The command --------------------------------------------------------------


def command(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    evidence_cli.add_parser(commands, "evidence")
    return parser.parse_args(["evidence", *argv])


def test_the_command_runs_every_check_and_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AUDIO_MASTER_KEY", KEY_TEXT)
    monkeypatch.setenv("AUDIT_SIGNING_KEY", new_seed())
    monkeypatch.setenv("REGION_STORES", f"eu=sqlite:///{tmp_path}/eu.db")
    log = tmp_path / "service.log"
    log.write_text(CLEAN)
    code = evidence_cli.run(command([
        "--database-url", f"sqlite:///{tmp_path}/control.sqlite3",
        "--logs", str(log), "--out", str(tmp_path / "evidence")]))
    [json_path] = (tmp_path / "evidence").glob("*/evidence-*.json")
    written = json.loads(json_path.read_text())
    passed = {c["name"]: c["passed"] for c in written["checks"]}
    assert tuple(passed) == CHECKS
    # A new control database: the retention job has never run there.
    assert code == 1
    assert not passed["retention_ran"]
    assert passed["zero_retention_by_default"]
    assert passed["no_pii_in_logs"]
    out, err = capsys.readouterr()
    assert out.startswith("# Evidence report, ")
    assert f"written: {json_path}" in err


@pytest.mark.parametrize("days", ["0", "-1", "two"])
def test_the_age_limit_must_be_a_positive_number_of_days(
    days: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        command(["--max-age-days", days])
    assert "is not a positive whole number of days" in (
        capsys.readouterr().err)
