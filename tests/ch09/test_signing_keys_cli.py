"""`python -m ch09_security signing-keys`: rotate, list, retire."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.ch09.conftest import Command


@pytest.fixture
def signing_keys(command: Callable[[str], Command]) -> Command:
    return command("signing-keys")


def test_rotate_then_retire_the_old_key(signing_keys: Command) -> None:
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
