"""`python -m ch10_compliance audit ...`, run in this process on a
database of the test's own: record, publish, prove, check a proof as a
third party, and a tampered log caught with its position."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from ch10_compliance.__main__ import main
from ch10_compliance.signer import load_signer, new_seed

Audit = Callable[..., tuple[int, str, str]]


@pytest.fixture
def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> Audit:
    monkeypatch.setenv("AUDIT_SIGNING_KEY", new_seed())
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/c.sqlite3")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["audit", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def record(audit: Audit, count: int) -> None:
    for n in range(count):
        code, out, _ = audit("record", "--action", "admin.restore",
                             "--actor", "operator:ann", "--target", f"t{n}")
        assert code == 0 and out.startswith("recorded as entry")


def test_record_publish_verify(audit: Audit) -> None:
    record(audit, 3)
    code, out, _ = audit("checkpoint")
    assert code == 0 and out.splitlines()[1] == "3"
    code, out, _ = audit("checkpoint")
    assert "no new entries" in out
    code, out, _ = audit("verify")
    assert code == 0 and out.strip() == "3 entries, 1 checkpoints: OK"
    code, out, _ = audit("list", "--last", "2")
    entries = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in entries] == [1, 2]
    assert entries[0]["details"] == {"via": "command line"}


def test_a_proof_is_checked_by_a_third_party(
        audit: Audit, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    record(audit, 5)
    code, out, _ = audit("prove", "3")  # checkpoints first: none yet
    assert code == 0
    proof = tmp_path / "proof.json"
    proof.write_text(out)
    _, key, _ = audit("public-key")
    code, out, err = audit("check-proof", str(proof))
    assert code == 0 and out.startswith("valid: entry 3")
    assert "pin the log's key" in err
    code, out, err = audit("check-proof", "--public-key", key.strip(),
                           str(proof))
    assert code == 0 and err == ""
    _, other, _ = audit("new-signing-key")
    monkeypatch.setenv("AUDIT_SIGNING_KEY", other.strip())
    _, other_key, _ = audit("public-key")
    code, out, _ = audit("check-proof", "--public-key",
                         other_key.strip(), str(proof))
    assert code == 1 and out.startswith("INVALID")
    monkeypatch.setattr("sys.stdin", io.StringIO(proof.read_text()))
    code, out, _ = audit("check-proof", "-")
    assert code == 0


def test_consistency_between_two_checkpoints(audit: Audit,
                                             tmp_path: Path) -> None:
    record(audit, 2)
    audit("checkpoint")
    record(audit, 3)
    audit("checkpoint")
    code, out, _ = audit("consistency", "2", "5")
    assert code == 0
    (tmp_path / "c.json").write_text(out)
    code, out, _ = audit("check-proof", str(tmp_path / "c.json"))
    assert code == 0 and "only appended" in out


def test_a_tampered_log_fails_verify_with_the_position(
        audit: Audit, tmp_path: Path) -> None:
    record(audit, 6)
    audit("checkpoint")
    with sqlite3.connect(tmp_path / "c.sqlite3") as db:
        db.execute("DROP TRIGGER audit_entries_no_update")
        db.execute("UPDATE audit_entries SET entry = replace(entry, "
                   "'operator:ann', 'operator:bob') WHERE seq = 4")
    code, out, _ = audit("verify")
    assert code == 1
    assert "position 4: edited: entry 4 was edited" in out
    assert out.splitlines()[-1] == "6 entries, 1 checkpoints: 1 problems"


def test_bad_input_gets_a_clear_error(audit: Audit,
                                      tmp_path: Path) -> None:
    code, _, err = audit("record", "--action", "Restore", "--actor", "x")
    assert code == 2 and "dotted lower case" in err
    code, _, err = audit("record", "--action", "admin.x", "--actor",
                         "x", "--reason", "spk_0123456789abcdefgh")
    assert code == 2 and "shaped like a key" in err
    code, _, err = audit("prove", "7")
    assert code == 2 and "no audit entry 7" in err
    (tmp_path / "bad.json").write_text("{not json")
    code, _, err = audit("check-proof", str(tmp_path / "bad.json"))
    assert code == 2 and "not JSON" in err
    (tmp_path / "list.json").write_text("[]")
    code, _, err = audit("check-proof", str(tmp_path / "list.json"))
    assert code == 2 and "JSON object" in err
    (tmp_path / "object.json").write_text("{}")
    code, _, err = audit("check-proof", "--public-key", "abc",
                         str(tmp_path / "object.json"))
    assert code == 2 and "32 bytes of Ed25519" in err
    code, _, err = audit("verify", "--public-key", "!!")
    assert code == 2 and "32 bytes of Ed25519" in err


def test_an_unusable_signing_key_is_refused(
        audit: Audit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_SIGNING_KEY", "short")
    code, _, err = audit("checkpoint")
    assert code == 2 and "AUDIT_SIGNING_KEY must hold 32 bytes" in err


def test_a_development_key_is_generated_once(tmp_path: Path) -> None:
    path = tmp_path / "audit-signing.key"
    first = load_signer({}, path)
    assert load_signer({}, path).public_key_text == first.public_key_text
    assert path.stat().st_mode & 0o777 == 0o600
