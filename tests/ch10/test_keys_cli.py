"""`python -m ch10_compliance keys ...`: each key change an admin
action in the audit log, by key id and actor, never the key."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from ch10_compliance.__main__ import main
from ch10_compliance.audit import open_audit_log
from tests.ch09.conftest import SECRET

KEY = re.compile(r"^(spk_\S+)$", re.MULTILINE)
KEY_ID = re.compile(r"^(key_\w+)", re.MULTILINE)
Keys = Callable[..., tuple[int, str, str]]


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> Keys:
    monkeypatch.setenv("KEY_HASH_SECRET", SECRET.decode())
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/c.sqlite3")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["keys", "--actor", "operator:ann", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def audited(tmp_path: Path) -> list[dict[str, object]]:
    log = open_audit_log(f"sqlite:///{tmp_path}/c.sqlite3")
    entries = [json.loads(text) for _, text in log.entries()]
    log.engine.dispose()
    return entries


def test_create_roll_revoke_are_audited(keys: Keys,
                                        tmp_path: Path) -> None:
    code, out, _ = keys("create", "--owner", "acme")
    assert code == 0
    [key], [first] = KEY.findall(out), KEY_ID.findall(out)
    code, out, _ = keys("roll", first, "--overlap", "1h")
    assert code == 0
    [second] = [k for k in KEY_ID.findall(out) if k != first]
    assert keys("revoke", second)[0] == 0
    assert keys("list")[0] == 0  # reads nothing worth an entry
    entries = audited(tmp_path)
    assert [(e["action"], e["target"], e["actor"], e["owner"])
            for e in entries] == [
        ("admin.key_created", first, "operator:ann", "acme"),
        ("admin.key_rolled", first, "operator:ann", "acme"),
        ("admin.key_created", second, "operator:ann", "acme"),
        ("admin.key_revoked", second, "operator:ann", "acme")]
    rolled = entries[1]["details"]
    assert isinstance(rolled, dict) and rolled["successor"] == second
    assert key not in json.dumps(entries)


def test_a_refused_action_is_audited_as_a_failure(
        keys: Keys, tmp_path: Path) -> None:
    code, _, err = keys("revoke", "key_nope")
    assert code == 1 and "key_nope" in err
    [entry] = audited(tmp_path)
    assert (entry["action"], entry["outcome"], entry["target"]) == (
        "admin.key_revoke", "failure", "key_nope")


def test_an_unusable_secret_is_refused(
        keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_HASH_SECRET", "short")
    code, _, err = keys("list")
    assert code == 2 and "KEY_HASH_SECRET" in err
