"""`python -m ch09_security serve` as its own process, keys by command.

The operator's view: a key made with `keys create` streams, the same
key revoked with `keys revoke` (another process) ends its live stream
with 1008 within the promised two seconds, and SIGTERM stops it all.
With the certificates `certs` writes, the same service serves wss://,
https:// (its HTTP API too, which refuses TLS 1.2) and gRPC under
mutual TLS, to clients that trust its CA; gRPC takes the same managed
keys and the tokens they grant.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ch04_streaming.client import (
    DIALECTS,
    DeepgramClient,
    load_audio,
    stream,
)
from ch09_security.master_key import MASTER_KEY_VARIABLE
from ch09_security.tls import client_context
from examples.service import Service, running_service, wait_until_ready
from tests.ch04.harness import audio_of, reference
from tests.ch09.conftest import SECRET
from tests.ch09.tls_harness import (
    GrpcOverTls,
    Identity,
    get,
    tls_1_2_only,
)

KEY_LINE = re.compile(rb"^(spk_\w+)$", re.MULTILINE)
KEY_ID = re.compile(rb"^(key_[0-9a-f]+)", re.MULTILINE)
GRPC_PORT = re.compile(r"gRPC streaming on grpcs://127\.0\.0\.1:(\d+)")
API_URL = re.compile(r"API on (https://127\.0\.0\.1:\d+)")


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


async def ready_over_https(service: Service, ca: Path) -> None:
    """Until `/readyz` answers 200 to a client that trusts `ca`."""
    url = f"https://127.0.0.1:{service.port}/readyz"
    async with asyncio.timeout(60):
        while (await get(url, ca)).status_code != 200:
            await asyncio.sleep(0.1)


async def test_certificates_from_certs_serve_every_port_over_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tls = tmp_path / "tls"
    certs = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ch09_security", "certs", "--out", str(tls),
        stdout=asyncio.subprocess.PIPE)
    printed, _ = await asyncio.wait_for(certs.communicate(), 60)
    assert certs.returncode == 0, printed
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/keys.sqlite3",
           "KEY_HASH_SECRET": SECRET.decode(),
           MASTER_KEY_VARIABLE: base64.b64encode(bytes(32)).decode(),
           "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}
    [key] = KEY_LINE.findall(await keys_command(env, "create", "--owner",
                                                "acme"))
    args = ("-m", "ch09_security", "serve", "--port", "0",
            "--api-port", "0", "--grpc-port", "0",
            "--tls-cert", str(tls / "server.pem"),
            "--tls-key", str(tls / "server-key.pem"),
            "--tls-ca", str(tls / "ca.pem"))
    async with running_service(args, env) as service:
        [grpc_port] = GRPC_PORT.findall("".join(service.banner))
        [api] = API_URL.findall("".join(service.banner))
        await ready_over_https(service, tls / "ca.pem")
        async with httpx.AsyncClient(verify=client_context(tls / "ca.pem"),
                                     timeout=10) as backend:
            granted = await backend.post(
                f"{api}/v1/auth/grant", json={"ttl_seconds": 60},
                headers={"Authorization": f"Token {key.decode()}"})
        token = granted.json()["access_token"]
        async with httpx.AsyncClient(
                verify=tls_1_2_only(tls / "ca.pem")) as older:
            with pytest.raises(httpx.ConnectError):  # the API's floor
                await older.get(f"{api}/.well-known/jwks.json")
        monkeypatch.setenv("SSL_CERT_FILE", str(tls / "ca.pem"))
        report = await stream(f"wss://127.0.0.1:{service.port}",
                              DIALECTS["deepgram"], key.decode(),
                              load_audio(audio_of("quick_brown_fox")))
        service_client = Identity(tls / "client.pem", tls / "client-key.pem")
        grpc_tls = GrpcOverTls(int(grpc_port))
        said = [await grpc_tls.transcript(tls / "ca.pem", service_client,
                                          credential)
                for credential in (key.decode(), token)]
    assert report.transcript == reference("quick_brown_fox")
    assert said == [reference("quick_brown_fox")] * 2  # key, then token
    assert service.process.returncode == 0
