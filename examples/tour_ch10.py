"""The chapter 10 stop of the tour: a governed stream, and its records.

Creates a key for an EU-only customer with `python -m ch10_compliance
keys create` (audited), starts `python -m ch10_compliance serve` on a
fresh control database and two regional stores (EU and US), records a
speaker's consent over HTTP, streams a fixture that names the speaker
and asks to be kept, shows a stream asking for the US region refused,
and stops the service with SIGTERM. Then, as an operator or an auditor
would: the audit entries the stream left, the speaker's export, their
erasure with its signed receipt, an inclusion proof checked with the
public key alone, and a tampered entry caught by `audit verify` with
its position.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.request

from websockets.exceptions import InvalidStatus

from ch04_streaming.client import DIALECTS, load_audio, stream
from examples.fixtures import AUDIO_DIR
from examples.service import REPO_ROOT, running_service, wait_until_ready
from examples.stream_file import WithQuery

DEMO_DIR = REPO_ROOT / "build" / "demo" / "ch10"
CONTROL = DEMO_DIR / "control.sqlite3"
ENV = {"DATABASE_URL": f"sqlite:///{CONTROL}",
       "REGION_STORES": f"eu=sqlite:///{DEMO_DIR}/region-eu.sqlite3 "
                        f"us=sqlite:///{DEMO_DIR}/region-us.sqlite3",
       "SUBJECT_EXPORTS_DIR": str(DEMO_DIR / "exports")}
API = re.compile(r"API on (http://127\.0\.0\.1:\d+)")
NEW_KEY = re.compile(r"^(spk_\w+)$", re.MULTILINE)
OWNER, SUBJECT = "acme-eu", "alice"  # residency.toml: acme-eu is EU only


def command(*args: str, show: int = 12, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    print(f"\n$ python -m ch10_compliance {' '.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "ch10_compliance", *args], check=False,
        cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, **ENV})
    lines = (done.stdout + done.stderr).rstrip().splitlines()
    for line in lines[:show]:
        print(f"  {line}")
    if len(lines) > show:
        print(f"  ... ({len(lines) - show} more lines)")
    if check and done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr}")
    return done


def consent(api: str, key: str, purpose: str) -> None:
    request = urllib.request.Request(
        f"{api}/v1/subjects/{SUBJECT}/consents/{purpose}", method="PUT",
        data=json.dumps({"type": "consent", "granted": True}).encode(),
        headers={"Authorization": f"Token {key}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    print(f"  PUT /v1/subjects/{SUBJECT}/consents/{purpose}:"
          f" {response.status} {body['consents']}")


async def governed_streams(url: str, api: str, key: str) -> None:
    for purpose in ("transcription", "retention"):
        consent(api, key, purpose)
    audio = load_audio(AUDIO_DIR / "weather_forecast.wav")
    kept = WithQuery(DIALECTS["deepgram"],
                     {"subject": SUBJECT, "retain": "true"})
    report = await stream(url, kept, key, audio)
    print(f"  subject={SUBJECT}&retain=true: {report.transcript!r},"
          " kept in the EU store")
    try:
        await stream(url, WithQuery(DIALECTS["deepgram"], {
            "subject": SUBJECT, "region": "us"}), key, audio)
    except InvalidStatus as refused:
        response = refused.response
        print(f"  region=us: refused {response.status_code}: "
              f"{response.body.decode().strip()}")


async def governed_service(key: str) -> None:
    async with running_service(
            ("-m", "ch10_compliance", "serve", "--port", "0",
             "--api-port", "0"),
            {**ENV, "SPEECH_API_KEYS": "", "CH04_LOAD_S": "0",
             "CH04_WARMUP_S": "0"}) as service:
        api = API.search("".join(service.banner))
        assert api, service.banner
        print(f"\nservice started: pid {service.pid}, streaming port"
              f" {service.port}, API {api.group(1)}")
        try:
            await wait_until_ready(service.port)
            await governed_streams(f"ws://127.0.0.1:{service.port}",
                                   api.group(1), key)
        finally:
            service.process.send_signal(signal.SIGTERM)
            code = await service.process.wait()
            print(f"service stopped on SIGTERM (exit {code}); its last "
                  "act was a signed checkpoint")


def tamper(seq: int) -> None:
    """What an intruder with the database file does: drop the trigger,
    change who did something."""
    print(f"\n  (an intruder edits audit entry {seq} in the database)")
    with sqlite3.connect(CONTROL) as db:
        db.execute("DROP TRIGGER audit_entries_no_update")
        db.execute("UPDATE audit_entries SET entry = replace(entry, "
                   "'operator:', 'nobody:') WHERE seq = ?", (seq,))


def compliance_records() -> None:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    for path in DEMO_DIR.glob("*.sqlite3*"):
        path.unlink()
    made = command("keys", "--actor", "operator:tour", "create",
                   "--owner", OWNER, "--label", "tour")
    key = NEW_KEY.search(made.stdout)
    assert key, made.stdout
    asyncio.run(governed_service(key.group(1)))
    command("audit", "list", "--last", "9", show=9)
    command("subject", "export", SUBJECT, "--owner", OWNER)
    command("subject", "erase", SUBJECT, "--owner", OWNER, show=40)
    command("subject", "status", SUBJECT, "--owner", OWNER)
    proof = command("audit", "prove", "0", show=5)
    (DEMO_DIR / "proof.json").write_text(proof.stdout)
    public_key = command("audit", "public-key").stdout.strip()
    command("audit", "check-proof", "--public-key", public_key,
            str(DEMO_DIR / "proof.json"))
    command("audit", "verify")
    tamper(0)
    caught = command("audit", "verify", check=False)
    print(f"  audit verify exits {caught.returncode}: the edit is named"
          " by its position")


if __name__ == "__main__":
    compliance_records()
