"""Settings: flags win over CH04_ variables, which win over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from ch04_streaming.settings import DEFAULT_MANIFEST, parse_settings


def test_flags_then_environment_then_defaults() -> None:
    env = {"CH04_PORT": "9001", "CH04_MAX_STREAMS": "7",
           "SPEECH_API_KEYS": "k"}
    settings = parse_settings(["--max-streams", "5"], env=env)
    assert (settings.port, settings.max_streams) == (9001, 5)
    assert settings.load_s == 1.0 and settings.manifest == DEFAULT_MANIFEST
    assert isinstance(settings.manifest, Path)
    assert settings.env["SPEECH_API_KEYS"] == "k"


@pytest.mark.parametrize("flags", [["--profile", "gpu"],
                                   ["--recognizer", "whisper"],
                                   ["--port", "eighty"]])
def test_bad_flags_are_refused(
    flags: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as refused:
        parse_settings(flags, env={})
    assert refused.value.code == 2  # a usage error, as argparse exits
    (error,) = [line for line in capsys.readouterr().err.splitlines()
                if "error:" in line]
    assert flags[0] in error  # the message names the flag
