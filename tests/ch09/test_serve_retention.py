"""`serve` keeps a stream only when asked; `audio export` gives it back.

The operator's view, every part its own process: a key made by
command, two streams through `python -m ch09_security serve` (one
plain, one sent by `examples.stream_file --query retain=true`, as the
README runs it), SIGTERM (the server finishes its writes before it
exits), then `audio list` and `audio export`, whose WAV holds exactly
the audio that was sent.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
from pathlib import Path

import pytest

from ch04_streaming.client import DIALECTS, load_audio, stream
from ch09_security.master_key import MASTER_KEY_VARIABLE
from examples import stream_file
from examples.service import running_service, wait_until_ready
from tests.ch04.harness import audio_of, reference
from tests.ch09.conftest import SECRET
from tests.ch09.test_serve import KEY_LINE, keys_command

OBJECT_LINE = re.compile(r"^(obj_[0-9a-f]{16})  (\w+)", re.MULTILINE)


async def command(env: dict[str, str], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output
    return output.decode()


async def audio_command(env: dict[str, str], *args: str) -> str:
    return await command(env, "ch09_security", "audio", *args)


async def test_serve_keeps_only_what_was_asked_and_audio_exports_it(
    tmp_path: Path,
) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/security.sqlite3",
           "KEY_HASH_SECRET": SECRET.decode(),
           MASTER_KEY_VARIABLE: base64.b64encode(os.urandom(32)).decode(),
           "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}
    [key] = KEY_LINE.findall(await keys_command(env, "create", "--owner",
                                                "acme"))
    sent = load_audio(audio_of("living_room"))
    async with running_service(("-m", "ch09_security", "serve",
                                "--port", "0"), env) as service:
        await wait_until_ready(service.port)
        url = f"ws://127.0.0.1:{service.port}"
        report = await stream(url, DIALECTS["deepgram"], key.decode(), sent)
        assert report.transcript == reference("living_room")
        printed = await command(
            env, "examples.stream_file", str(audio_of("living_room")),
            "--url", url, "--key", key.decode(), "--query", "retain=true")
        assert reference("living_room") in printed
    assert service.process.returncode == 0
    listed = OBJECT_LINE.findall(await audio_command(env, "list"))
    assert [kind for _, kind in listed] == ["audio", "transcript"]
    (audio_id, _), (transcript_id, _) = listed
    await audio_command(env, "export", audio_id,
                        "--out", str(tmp_path / "kept.wav"))
    assert load_audio(tmp_path / "kept.wav") == sent
    await audio_command(env, "export", transcript_id,
                        "--out", str(tmp_path / "kept.txt"))
    assert (tmp_path / "kept.txt").read_text().split() == reference(
        "living_room").split()


def test_a_query_parameter_without_a_value_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        stream_file.main([str(audio_of("silence")), "--key", "k",
                          "--query", "retain"])
    assert stopped.value.code == 2
    assert "'retain' is not NAME=VALUE" in capsys.readouterr().err
