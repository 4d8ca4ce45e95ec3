"""The chapter 4 stop of the tour: a real service, two dialects, live.

Starts `python -m ch04_streaming` as its own process, waits for the cold
start to finish, streams the long conversation through the Deepgram and
the AssemblyAI dialect at once, at the pace of speech, prints each final
as it arrives, measures what the VAD saved, and stops the service with
SIGTERM, as an orchestrator would.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import Callable
from datetime import UTC, datetime

from ch04_streaming import vad_savings
from ch04_streaming.client import DIALECTS, Report, Result, load_audio, stream
from ch04_streaming.vad import VadConfig
from ch11_slo.records import Record, write_records
from examples.fixtures import AUDIO_DIR, load_manifest
from examples.service import Service, running_service, wait_until_ready
from examples.sli_records import stream_record, utterance_records

LONG = AUDIO_DIR / "support_call.wav"
DIALECT_NAMES = ("deepgram", "assemblyai")
DEMO_RECORDS = AUDIO_DIR.parent.parent / "build" / "demo" / "records.jsonl"


async def show_readiness(port: int) -> None:
    print("  /readyz: 503 while the model loads ...", flush=True)
    await wait_until_ready(port)
    print("  /readyz: 200, ready")


def printer(dialect: str) -> Callable[[Result], None]:
    def show(result: Result) -> None:
        if result.is_final and result.text:
            print(f"  [{dialect:<10}] {result.text}"
                  f"  ({result.latency_s * 1000:.0f} ms)", flush=True)

    return show


async def both_dialects(port: int, key: str) -> list[Report]:
    audio = load_audio(LONG)
    url = f"ws://127.0.0.1:{port}"
    return list(await asyncio.gather(*(
        stream(url, DIALECTS[name], key, audio, chunk_ms=100,
               realtime=True, on_result=printer(name))
        for name in DIALECT_NAMES
    )))


async def run() -> None:
    key = "demo-" + secrets.token_hex(8)
    async with running_service(("-m", "ch04_streaming", "--port", "0"),
                               {"SPEECH_API_KEYS": key}) as service:
        print(f"service started: pid {service.pid}, port {service.port}")
        await stream_and_stop(service, key)


async def stream_and_stop(service: Service, key: str) -> None:
    port = service.port
    try:
        await show_readiness(port)
        print(f"\nStreaming {LONG.name} (44 s) through both dialects at"
              " the pace of speech; finals with their latency after the"
              " last word:\n", flush=True)
        started = datetime.now(UTC)
        reports = await both_dialects(port, key)
        save_records(reports, started)
        for name, report in zip(("Deepgram", "AssemblyAI"), reports,
                                strict=True):
            print(f"\n{name}: closed {report.close_code}, "
                  f"{len(report.finals)} finals, first result "
                  f"{(report.first_result_s or 0) * 1000:.0f} ms after"
                  " the first word")
        saved = vad_savings.measure(LONG, VadConfig())
        print(f"VAD: {saved.share_passed:.0%} of {saved.audio_s:.1f} s"
              " reached the model; the rest never cost inference")
    finally:
        service.process.send_signal(signal.SIGTERM)
        code = await service.process.wait()
        print(f"service stopped on SIGTERM (exit {code})")


def save_records(reports: list[Report], started: datetime) -> None:
    """Keep the SLI records of both streams for chapter 11's stop."""
    fixture = load_manifest().get("support_call")
    records: list[Record] = []
    for dialect, report in zip(DIALECT_NAMES, reports, strict=True):
        stream_id = f"demo-{dialect}"
        records.append(stream_record(report, stream_id, started,
                                     datetime.now(UTC)))
        records += utterance_records(report, fixture, stream_id, dialect)
    write_records(DEMO_RECORDS, records)


def streaming_service() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    streaming_service()
