"""The master key: 32 bytes of base64 from the environment, or a file."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from ch09_security.master_key import (
    MASTER_KEY_VARIABLE,
    MasterKeyError,
    load_master_key,
)
from ch09_security.secret_file import generated_once
from ch09_security.server_secret import load_secret

KEY = bytes(range(32))


def test_the_environment_gives_the_key(tmp_path: Path) -> None:
    env = {MASTER_KEY_VARIABLE: base64.b64encode(KEY).decode()}
    assert load_master_key(env, tmp_path / "unused.key") == KEY
    assert not (tmp_path / "unused.key").exists()


@pytest.mark.parametrize("value, reason", [
    ("", "must decode to 32 bytes, not 0"),
    (base64.b64encode(KEY[:16]).decode(), "must decode to 32 bytes, not 16"),
    (base64.b64encode(KEY + b"!").decode(),
     "must decode to 32 bytes, not 33"),
    ("not base64 at all!", "is not base64"),
    (KEY.hex(), "must decode to 32 bytes, not 48"),  # hex is not base64
])
def test_a_bad_value_is_refused_with_the_reason(
    tmp_path: Path, value: str, reason: str,
) -> None:
    with pytest.raises(MasterKeyError,
                       match=f"{MASTER_KEY_VARIABLE} {reason}"):
        load_master_key({MASTER_KEY_VARIABLE: value}, tmp_path / "k")


def test_a_development_key_is_generated_once_for_its_owner_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "build" / "audio-master.key"
    first = load_master_key({}, path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key({}, path) == first


def test_a_damaged_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audio-master.key"
    path.write_text("c2hvcnQ=\n")
    with pytest.raises(MasterKeyError, match=f"{path} must decode"):
        load_master_key({}, path)


def test_the_hash_secret_shares_the_generated_file(tmp_path: Path) -> None:
    path = tmp_path / "key-hash.secret"
    secret = load_secret({}, path)
    assert len(secret) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret({}, path) == secret


def test_a_file_once_written_is_never_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    assert generated_once(path, lambda: "first") == "first"
    assert generated_once(path, lambda: "second") == "first"
