"""`python -m ch09_security audio`: kept audio as an operator handles it.

Objects are stored through the vault, as the server stores them, then
listed, exported, rotated and shredded by command, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ch04_streaming.client import load_audio
from ch07_api import database
from ch09_security.__main__ import main
from ch09_security.audio_cli import open_vault
from ch09_security.master_key import MASTER_KEY_VARIABLE
from ch09_security.vault import AudioVault, ObjectInfo, ObjectKind, Plaintext
from tests.ch04.harness import audio_of

MASTER = base64.b64encode(bytes(range(32))).decode()
OBJECT_ID = re.compile(r"obj_[0-9a-f]{16}")

Audio = Callable[..., tuple[int, str, str]]  # exit code, stdout, stderr


@pytest.fixture
def audio(database_url: str, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> Audio:
    monkeypatch.setenv(MASTER_KEY_VARIABLE, MASTER)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["audio", "--database-url", database_url, *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def vault(database_url: str) -> Iterator[AudioVault]:
    opened = open_vault(database.open_engine(database_url),
                        {MASTER_KEY_VARIABLE: MASTER})
    yield opened
    opened.engine.dispose()


def keep(vault: AudioVault, owner: str, fixture: str = "quick_brown_fox",
         ) -> tuple[ObjectInfo, ObjectInfo]:
    sent = load_audio(audio_of(fixture))
    kept, transcript = vault.put(
        Plaintext(owner, ObjectKind.AUDIO, f"{owner}-stream", sent.payload,
                  sent.encoding, sent.sample_rate),
        Plaintext(owner, ObjectKind.TRANSCRIPT, f"{owner}-stream",
                  b"the quick brown fox"))
    return kept, transcript


def test_list_and_show_describe_without_decrypting(
    audio: Audio, vault: AudioVault,
) -> None:
    kept, transcript = keep(vault, "acme")
    code, out, _ = audio("list")
    assert code == 0 and OBJECT_ID.findall(out) == [kept.object_id,
                                                    transcript.object_id]
    assert "sealed (key v1)" in out and "brown" not in out
    code, out, _ = audio("show", kept.object_id)
    assert code == 0 and "owner      acme" in out
    assert "audio      linear16, 16000 Hz" in out


def test_export_writes_the_audio_as_sent_into_a_wav(
    audio: Audio, vault: AudioVault, tmp_path: Path,
) -> None:
    for fixture in ("quick_brown_fox", "quick_brown_fox_8k_mulaw"):
        kept, transcript = keep(vault, "acme", fixture)
        sent = load_audio(audio_of(fixture))
        code, out, _ = audio("export", kept.object_id,
                             "--out", str(tmp_path / "kept.wav"))
        assert code == 0 and "kept.wav" in out
        assert load_audio(tmp_path / "kept.wav") == sent
        info = sf.info(str(tmp_path / "kept.wav"))
        assert (info.format, info.samplerate) == ("WAV", sent.sample_rate)
    code, _, _ = audio("export", transcript.object_id,
                       "--out", str(tmp_path / "kept.txt"))
    assert (tmp_path / "kept.txt").read_text() == "the quick brown fox\n"


def test_rotate_keeps_every_object_readable(
    audio: Audio, vault: AudioVault, tmp_path: Path,
) -> None:
    kept, _ = keep(vault, "acme")
    code, out, _ = audio("rotate", "acme")
    assert code == 0
    assert "acme: key version 2; 2 data keys re-wrapped" in out
    assert "destroyed version(s) 1" in out
    code, _, _ = audio("export", kept.object_id,
                       "--out", str(tmp_path / "kept.wav"))
    samples, _ = sf.read(str(tmp_path / "kept.wav"), dtype="int16")
    sent = load_audio(audio_of("quick_brown_fox")).payload
    assert code == 0 and np.asarray(samples).tobytes() == sent


def test_shred_needs_yes_and_then_nothing_of_the_owner_opens(
    audio: Audio, vault: AudioVault, tmp_path: Path,
) -> None:
    kept, _ = keep(vault, "acme")
    spared, _ = keep(vault, "globex")
    code, _, err = audio("shred", "acme")
    assert code == 1 and "makes 2 objects unreadable for ever" in err
    code, out, _ = audio("shred", "acme", "--yes")
    assert code == 0 and "2 objects can never be read again" in out
    code, _, err = audio("export", kept.object_id,
                         "--out", str(tmp_path / "gone.wav"))
    assert code == 1 and "was destroyed" in err
    assert not (tmp_path / "gone.wav").exists()
    code, out, _ = audio("list", "--owner", "acme")
    assert out.count("shredded") == 2
    code, _, _ = audio("export", spared.object_id,
                       "--out", str(tmp_path / "spared.wav"))
    assert code == 0
    code, _, err = audio("shred", "acme", "--yes")
    assert code == 1 and "acme has no keys to destroy" in err


@pytest.mark.parametrize("args", [
    ("show", "obj_0000000000000000"),
    ("export", "obj_0000000000000000", "--out", "x.wav"),
    ("rotate", "nobody"),
])
def test_unknown_objects_and_owners_are_named(
    audio: Audio, args: tuple[str, ...],
) -> None:
    code, _, err = audio(*args)
    assert code == 1
    assert "no object obj_0000000000000000" in err or (
        "nobody has no keys" in err)


@pytest.mark.parametrize("value, reason", [
    ("c2hvcnQ=", "must decode to 32 bytes, not 5"),
    ("***", "is not base64"),
])
def test_a_bad_master_key_stops_the_command(
    audio: Audio, monkeypatch: pytest.MonkeyPatch, value: str, reason: str,
) -> None:
    monkeypatch.setenv(MASTER_KEY_VARIABLE, value)
    code, _, err = audio("list")
    assert code == 2 and f"{MASTER_KEY_VARIABLE} {reason}" in err
