"""The chapter 9 stop of the tour: keys, a token, redaction, revocation.

Creates an API key with `python -m ch09_security keys create` (shown
once), starts `python -m ch09_security serve` on a fresh key store,
trades the key for a short-lived token as a customer's backend would
for a browser (Deepgram's grant) and streams with the token, streams a
spoken number with `redact=numbers` (no interim shows a digit), then
revokes the key from the command line while a stream is open and shows
that stream closed within the watch's poll, and stops the service with
SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ch04_streaming.client import DeepgramClient, load_audio, stream
from examples.fixtures import AUDIO_DIR
from examples.service import REPO_ROOT, running_service, wait_until_ready

DEMO_DIR = REPO_ROOT / "build" / "demo"
KEYS = DEMO_DIR / "security.sqlite3"
API = re.compile(r"API on (http://127\.0\.0\.1:\d+)")
NEW_KEY = re.compile(r"^(spk_\w+)$", re.MULTILINE)
KEY_ID = re.compile(r"^(key_[0-9a-f]+)", re.MULTILINE)


def keys_command(*args: str) -> str:
    print(f"\n$ python -m ch09_security keys {' '.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "ch09_security", "keys", *args],
        check=True, cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{KEYS}"})
    print(done.stdout.rstrip(), flush=True)
    return done.stdout


def grant(api: str, key: str) -> str:
    """What a customer's backend does for its browser page."""
    request = urllib.request.Request(
        f"{api}/v1/auth/grant", data=json.dumps({"ttl_seconds": 60}).encode(),
        headers={"Authorization": f"Token {key}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    token: str = body["access_token"]
    print(f"  POST /v1/auth/grant: {response.status}, a JWT for"
          f" {body['expires_in']:.0f} s ({token[:24]}...)")
    return token


async def token_and_redaction(url: str, api: str, key: str) -> None:
    token = grant(api, key)
    report = await stream(url, DeepgramClient(), token,
                          load_audio(AUDIO_DIR / "weather_forecast.wav"))
    print(f"  streamed with the token: {report.transcript!r}")
    redacted = await stream(url, DeepgramClient(redact="numbers"), key,
                            load_audio(AUDIO_DIR / "card_number.wav"),
                            realtime=True)  # an interim a chunk
    interims = [r.text for r in redacted.results if not r.is_final]
    print(f"  redact=numbers: {redacted.transcript!r}\n"
          f"  ({len(interims)} interims, none with a digit spoken:"
          f" {not any('four' in t for t in interims)})")


async def revoked_mid_stream(url: str, key: str, key_id: str) -> None:
    audio = load_audio(AUDIO_DIR / "support_call.wav").payload
    async with connect(f"{url}/v1/listen", additional_headers={
            "Authorization": f"Token {key}"}) as socket:
        await socket.send(audio[:64_000])  # two seconds, then it waits
        print("  a stream is open with the key", flush=True)
        revoking = time.monotonic()  # a Python process's start included
        keys_command("revoke", key_id)
        async with asyncio.timeout(10):
            try:
                async for _ in socket:
                    pass
            except ConnectionClosed:
                pass
    print(f"  the stream closed within {time.monotonic() - revoking:.2f} s"
          f" of the command's start: {socket.close_code}"
          f" {socket.close_reason}")


async def secured_service(key: str, key_id: str) -> None:
    async with running_service(
            ("-m", "ch09_security", "serve", "--port", "0",
             "--api-port", "0"),
            {"SPEECH_API_KEYS": "", "DATABASE_URL": f"sqlite:///{KEYS}",
             "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}) as service:
        api = API.search("".join(service.banner))
        assert api, service.banner
        print(f"\nservice started: pid {service.pid}, streaming port"
              f" {service.port}, API {api.group(1)}")
        url = f"ws://127.0.0.1:{service.port}"
        try:
            await wait_until_ready(service.port)
            await token_and_redaction(url, api.group(1), key)
            await revoked_mid_stream(url, key, key_id)
        finally:
            service.process.send_signal(signal.SIGTERM)
            code = await service.process.wait()
            print(f"service stopped on SIGTERM (exit {code})")


def keys_tokens_and_redaction() -> None:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        KEYS.with_name(KEYS.name + suffix).unlink(missing_ok=True)
    made = keys_command("create", "--owner", "acme", "--scope", "listen",
                        "--label", "tour")
    key, key_id = NEW_KEY.search(made), KEY_ID.search(made)
    assert key and key_id, made
    keys_command("list")
    asyncio.run(secured_service(key.group(1), key_id.group(1)))


if __name__ == "__main__":
    keys_tokens_and_redaction()
