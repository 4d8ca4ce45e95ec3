"""`python -m ch05_protocols wt` and the client's command, as processes.

Chapter 5, "WebTransport: QUIC datagrams". The server makes a
certificate for its run and prints its hash; the client's command,
given that hash, streams a fixture and prints its finals.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ch05_protocols.wt_client import SessionRefusedError, open_session
from examples.service import REPO_ROOT, running_service
from tests.ch04.harness import audio_of, reference

ENV = {"SPEECH_API_KEYS": "wt-key", "CH04_LOAD_S": "0",
       "CH04_WARMUP_S": "0", "CH04_LEXICON_CACHE": ""}
WAIT_S = 60.0


def printed(banner: list[str], name: str) -> str:
    found = re.search(rf"certificate sha256 \({name}\): (\S+)",
                      "".join(banner))
    assert found, banner
    return found.group(1)


async def wait_until_admitted(url: str, pin: bytes) -> None:
    """Until the model is loaded: 503 before."""
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                async with open_session(url, pin, key="wt-key"):
                    return
            except SessionRefusedError as refused:
                assert refused.status == 503
                await asyncio.sleep(0.1)


async def run_client(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ch05_protocols.wt_client", *args,
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(WAIT_S):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("mode", ["stream", "datagram"])
async def test_the_client_command_prints_the_fixtures_finals(
    tmp_path: Path, mode: str,
) -> None:
    args = ("-m", "ch05_protocols", "wt", "--port", "0",
            "--cert-dir", str(tmp_path))
    async with running_service(args, env=ENV) as service:
        pin_hex = printed(service.banner, "hex")
        url = f"https://127.0.0.1:{service.port}/v1/realtime"
        await wait_until_admitted(url, bytes.fromhex(pin_hex))
        # At the pace of speech: a burst of datagrams could overflow
        # the server's socket buffer where the kernel caps it low.
        code, out, err = await run_client(
            str(audio_of("quick_brown_fox")), "--url", url,
            "--cert-hash", pin_hex, "--key", "wt-key", "--audio", mode,
            *(["--fast"] if mode == "stream" else []))
        refused = await run_client(
            str(audio_of("quick_brown_fox")), "--url", url,
            "--cert-hash", pin_hex, "--key", "not-the-key")
    assert code == 0, err
    assert out.split("\n")[:-1] == [reference("quick_brown_fox")]
    assert '"webtransport.closed"' in err
    assert refused[0] == 1 and "HTTP 401" in refused[2]
    written = x509.load_pem_x509_certificate(
        (tmp_path / "cert.pem").read_bytes())
    der = written.public_bytes(serialization.Encoding.DER)
    assert hashlib.sha256(der).hexdigest() == pin_hex
    assert base64.b64decode(printed(service.banner, "base64")) == (
        bytes.fromhex(pin_hex))
    assert service.process.returncode == 0  # SIGTERM: a clean stop
