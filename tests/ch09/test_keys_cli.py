"""`python -m ch09_security keys`: the lifecycle as an operator runs it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from ch09_security.__main__ import main
from ch09_security.key_format import KEY_LENGTH, PREFIX
from tests.ch09.conftest import Command

KEY = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{KEY_LENGTH - len(PREFIX)}}}")
KEY_ID = re.compile(r"key_[0-9a-f]{16}")


@pytest.fixture
def keys(command: Callable[[str], Command]) -> Command:
    return command("keys")


def test_create_shows_the_key_once_and_list_never(keys: Command) -> None:
    code, out, _ = keys("create", "--owner", "acme", "--scope", "listen",
                        "--label", "call centre", "--expires-in", "90d")
    assert code == 0
    [key] = KEY.findall(out)
    assert "only time the key is shown" in out
    assert "scopes     listen" in out and "label      call centre" in out
    [key_id] = set(KEY_ID.findall(out))
    code, out, _ = keys("list")
    assert key_id in out and "acme" in out and key not in out
    code, out, _ = keys("show", key_id)
    assert key not in out and f"{PREFIX}...{key[-4:]}" in out
    assert "expires    20" in out  # a date, 90 days on


def test_roll_then_revoke(keys: Command) -> None:
    _, out, _ = keys("create", "--owner", "acme")
    [old_id] = set(KEY_ID.findall(out))
    code, out, _ = keys("roll", old_id, "--overlap", "1h")
    assert code == 0 and f"{old_id} keeps working until" in out
    new_ids = set(KEY_ID.findall(out)) - {old_id}
    assert len(new_ids) == 1 and len(KEY.findall(out)) == 1
    _, shown, _ = keys("show", old_id)
    assert f"rolled to  {new_ids.pop()}" in shown
    code, out, _ = keys("revoke", old_id)
    assert code == 0 and "revoked at" in out
    _, shown, _ = keys("show", old_id)
    assert shown.splitlines()[0].endswith("revoked")


def test_mistakes_are_errors_with_reasons(keys: Command) -> None:
    code, _, error = keys("revoke", "key_0000")
    assert (code, error) == (1, "error: no key key_0000\n")
    with pytest.raises(SystemExit) as bad:
        keys("create", "--owner", "acme", "--expires-in", "soon")
    assert bad.value.code == 2
    with pytest.raises(SystemExit):
        keys("create", "--owner", "acme", "--scope", "admin")


def test_a_short_secret_is_refused(tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]
                                   ) -> None:
    monkeypatch.setenv("KEY_HASH_SECRET", "short")
    code = main(["keys", "--database-url",
                 f"sqlite:///{tmp_path}/k.sqlite3", "list"])
    assert code == 2
    assert "at least 32 bytes" in capsys.readouterr().err
