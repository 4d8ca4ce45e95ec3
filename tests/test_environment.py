"""Missing machine services skip on a reader's machine, fail in CI."""

from __future__ import annotations

import pytest

from tests.environment import require_commands, unavailable


def test_missing_service_skips_outside_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no postgres"):
        unavailable("no postgres")


def test_missing_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required when CI"):
        unavailable("no postgres")


def test_missing_command_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-tool-here"):
        require_commands("sh", "no-such-tool-here")
