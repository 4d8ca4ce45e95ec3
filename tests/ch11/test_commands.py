"""`python -m ch11_slo` hands `report` and `scenario` their own flags."""

from __future__ import annotations

import pytest

from ch11_slo.__main__ import main


@pytest.mark.parametrize("command", ["report", "scenario"])
def test_delegated_commands_print_their_own_help(
    command: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert f"python -m ch11_slo {command}" in capsys.readouterr().out


def test_top_level_help_lists_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for command in ("burn-rates", "rules", "validate", "report",
                    "scenario", "jitter",
                    "accuracy-budget", "target-cost"):
        assert command in out
