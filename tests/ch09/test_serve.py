"""`python -m ch09_security serve` as its own process, keys by command.

The operator's view: a key made with `keys create` streams, the same
key revoked with `keys revoke` (another process) ends its live stream
with 1008 within the promised two seconds, and SIGTERM stops it all.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ch04_streaming.client import (
    DIALECTS,
    DeepgramClient,
    load_audio,
    stream,
)
from ch09_security.master_key import MASTER_KEY_VARIABLE
from examples.service import running_service, wait_until_ready
from tests.ch04.harness import audio_of, reference
from tests.ch09.conftest import SECRET

KEY_LINE = re.compile(rb"^(spk_\w+)$", re.MULTILINE)
KEY_ID = re.compile(rb"^(key_[0-9a-f]+)", re.MULTILINE)


async def keys_command(env: dict[str, str], *args: str) -> bytes:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ch09_security", "keys", *args,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output
    return output


async def test_keys_made_and_revoked_by_command_govern_the_service(
    tmp_path: Path,
) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/keys.sqlite3",
           "KEY_HASH_SECRET": SECRET.decode(),
           MASTER_KEY_VARIABLE: base64.b64encode(bytes(32)).decode(),
           "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}
    made = await keys_command(env, "create", "--owner", "acme")
    [key] = KEY_LINE.findall(made)
    [key_id] = KEY_ID.findall(made)
    async with running_service(("-m", "ch09_security", "serve",
                                "--port", "0"), env) as service:
        await wait_until_ready(service.port)
        url = f"ws://127.0.0.1:{service.port}"
        audio = load_audio(audio_of("quick_brown_fox"))
        report = await stream(url, DIALECTS["deepgram"], key.decode(),
                              audio)
        assert report.transcript == reference("quick_brown_fox")
        redacted = await stream(url, DeepgramClient(redact="numbers"),
                                key.decode(),
                                load_audio(audio_of("card_number")))
        assert redacted.transcript.startswith("my card number is")
        assert not any("four" in r.text for r in redacted.results)
        async with connect(f"{url}/v1/listen", additional_headers={
                "Authorization": f"Token {key.decode()}"}) as socket:
            await socket.send(audio.payload[:32_000])
            await keys_command(env, "revoke", key_id.decode())
            async with asyncio.timeout(2.0):
                try:
                    async for _ in socket:
                        pass
                except ConnectionClosed:
                    pass
        assert socket.close_code == 1008
    assert service.process.returncode == 0
