"""`python -m ch09_security signing-keys`: rotate, list, retire."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from ch09_security.__main__ import main
from tests.ch09.conftest import SECRET

Run = Callable[..., tuple[int, str, str]]  # exit code, stdout, stderr


@pytest.fixture
def signing_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> Run:
    monkeypatch.setenv("KEY_HASH_SECRET", SECRET.decode())
    url = f"sqlite:///{tmp_path}/keys.sqlite3"

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["signing-keys", "--database-url", url, *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_rotate_then_retire_the_old_key(signing_keys: Run) -> None:
    _, first, _ = signing_keys("rotate")
    _, second, _ = signing_keys("rotate")
    old = first.split()[0]
    new = second.split()[0]
    _, listed, _ = signing_keys("list")
    assert re.findall(r"^(\S+)  created", listed, re.M) == [old, new]
    assert listed.splitlines()[-1].endswith("signs")
    code, out, _ = signing_keys("retire", old)
    assert code == 0 and "stop verifying within 60 s" in out
    _, listed, _ = signing_keys("list")
    assert old not in listed and new in listed
    code, _, error = signing_keys("retire", old)
    assert (code, error) == (1, f"error: no active signing key {old}\n")
