"""The chapter 8 stop of the tour: metered streams, an invoice, Stripe.

Starts `python -m ch08_metering serve` on a fresh ledger, streams the
tour's conversation and two short utterances as the demo customer (with
billed add-ons), reports other usage through the ingest API (and a retry
of it, which is not counted twice), stops the service with SIGTERM, then
runs the chapter's tools as a reader would: the invoice preview, the
audit trail of one line, and the Stripe calls a delivery pass would make
(a dry run: no Stripe key is set). Last, a seeded month of two
customers' traffic (`simulate`) and their invoices, in dollars.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from ch04_streaming.client import (
    AssemblyAIClient,
    ClientDialect,
    DeepgramClient,
    load_audio,
    stream,
)
from examples.fixtures import AUDIO_DIR
from examples.service import REPO_ROOT, running_service, wait_until_ready

DEMO_DIR = REPO_ROOT / "build" / "demo"
LEDGER = DEMO_DIR / "metering.sqlite3"
DRY_RUN_LOG = DEMO_DIR / "stripe-dry-run.jsonl"
MONTH_LEDGER = DEMO_DIR / "month.sqlite3"
MONTH = "2026-11"  # the month the price list begins
DEV_KEY = re.compile(r"development key: (\S+)")


async def stream_as_demo(url: str, key: str) -> None:
    runs: list[tuple[str, ClientDialect, bool]] = [
        ("support_call.wav", DeepgramClient(diarize="true"), False),
        ("card_number.wav", DeepgramClient(redact="pii"), False),
        ("quick_brown_fox.wav", AssemblyAIClient(), True),
    ]
    for name, dialect, paced in runs:
        audio = load_audio(AUDIO_DIR / name)
        report = await stream(url, dialect, key, audio, realtime=paced)
        add_ons = (dialect.options if isinstance(dialect, DeepgramClient)
                   else {})
        print(f"  {name:<20} {dialect.path:<11} "
              f"{len(audio.payload) / audio.bytes_per_second:5.1f} s"
              f"  {' '.join(f'{k}={v}' for k, v in add_ons.items()):<13}"
              f" closed {report.close_code}", flush=True)


def report_usage(api: str, key: str) -> None:
    """Another service reports 1,200 synthesised characters, twice."""
    event = {
        "specversion": "1.0", "id": "tts-request-1", "source": "urn:tts",
        "type": "com.speechapi.usage.v1", "subject": "demo",
        "time": datetime.now(UTC).isoformat(),
        "data": {"meter": "characters", "value": 1200},
    }
    for attempt in ("first", "retry"):
        request = urllib.request.Request(
            f"{api}/v1/usage/events", data=json.dumps(event).encode(),
            headers={"Authorization": f"Bearer {key}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            [result] = json.loads(response.read())["results"]
        print(f"  POST /v1/usage/events ({attempt}): {response.status},"
              f" {result['status']}")


async def metered_streams() -> None:
    async with running_service(
            ("-m", "ch08_metering", "serve", "--port", "0",
             "--stream-port", "0", "--grpc-port", "0"),
            {"SPEECH_API_KEYS": "", "DATABASE_URL": f"sqlite:///{LEDGER}",
             "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}) as service:
        key = DEV_KEY.search("".join(service.banner))
        assert key, service.banner
        print(f"service started: pid {service.pid}; streams as customer"
              " demo (growth tier)\n")
        try:
            await wait_until_ready(service.streaming_port)
            await stream_as_demo(service.streaming_url, key.group(1))
            report_usage(f"http://127.0.0.1:{service.port}", key.group(1))
        finally:
            service.process.send_signal(signal.SIGTERM)
            code = await service.process.wait()
            print(f"service stopped on SIGTERM (exit {code}): every usage"
                  " event written")


def tool(*args: str, ledger: Path = LEDGER) -> None:
    command = [sys.executable, "-m", "ch08_metering", *args]
    print(f"\n$ python -m ch08_metering {' '.join(args)}", flush=True)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{ledger}"}
    env.pop("STRIPE_API_KEY", None)  # a dry run, whatever the shell has
    subprocess.run(command, check=True, cwd=REPO_ROOT, env=env)


def metering_and_billing() -> None:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    for path in (LEDGER, DRY_RUN_LOG, Path(f"{LEDGER}-wal"),
                 Path(f"{LEDGER}-shm")):
        path.unlink(missing_ok=True)
    asyncio.run(metered_streams())
    period = datetime.now(UTC).strftime("%Y-%m")
    tool("invoice", "--customer", "demo", "--period", period)
    tool("explain", "--customer", "demo", "--period", period,
         "--line", "audio+diarization")
    tool("deliver", "--once", "--settle-s", "-60",  # the open minute too
         "--dry-run-log", str(DRY_RUN_LOG.relative_to(REPO_ROOT)))
    print("\nA month of two customers' traffic, in dollars (a ledger of"
          " its own):", flush=True)
    for path in (MONTH_LEDGER, Path(f"{MONTH_LEDGER}-wal"),
                 Path(f"{MONTH_LEDGER}-shm")):
        path.unlink(missing_ok=True)
    tool("simulate", "--period", MONTH, ledger=MONTH_LEDGER)
    for customer in ("acme", "demo"):
        tool("invoice", "--customer", customer, "--period", MONTH,
             ledger=MONTH_LEDGER)


if __name__ == "__main__":
    metering_and_billing()
