"""`python -m ch08_metering serve` as its own process: ports, SIGTERM.

The metered service is run as an operator runs it. A stream still open
at SIGTERM is drained (closed 1001) and its usage is in the ledger once
the process has exited: nothing metered is lost to a deploy.
"""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from ch04_streaming.client import DeepgramClient, load_audio, stream
from ch08_metering.__main__ import main
from ch08_metering.database import open_engine
from ch08_metering.ledger import Ledger
from examples.service import running_service, wait_until_ready
from tests.ch04.harness import MANIFEST, audio_of, reference
from tests.ch08.ingest_harness import create_earlier_ledger


def post_event(port: int) -> dict[str, object]:
    event = {
        "specversion": "1.0", "id": "tts-1", "source": "urn:tts",
        "type": "com.speechapi.usage.v1", "subject": "acme",
        "time": datetime.now(UTC).isoformat(),
        "data": {"meter": "characters", "value": 1200},
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/usage/events",
        data=json.dumps(event).encode(),
        headers={"Authorization": "Bearer acme-key",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        [result] = json.loads(response.read())["results"]
        return dict(result)


async def test_sigterm_drains_streams_and_writes_their_usage(
        tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/ledger.sqlite3"
    audio = load_audio(audio_of("quick_brown_fox"))
    async with running_service(
            ("-m", "ch08_metering", "serve", "--port", "0",
             "--stream-port", "0", "--grpc-port", "0"),
            {"SPEECH_API_KEYS": "acme-key", "DATABASE_URL": database,
             "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0"}) as service:
        url = service.streaming_url
        await wait_until_ready(service.streaming_port)
        report = await stream(url, DeepgramClient(), "acme-key", audio)
        assert report.transcript == reference("quick_brown_fox")
        assert (await asyncio.to_thread(post_event, service.port))[
            "status"] == "accepted"
        socket = await connect(
            f"{url}/v1/listen?encoding=linear16&sample_rate=16000",
            additional_headers={"Authorization": "Token acme-key"})
        for offset in range(0, 32_000, 3_200):  # one second, then SIGTERM
            await socket.send(audio.payload[offset:offset + 3_200])
        service.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await socket.wait_closed()
            code = await service.process.wait()
    assert (socket.close_code, code) == (1001, 0)
    engine = open_engine(database)
    totals = Ledger(engine).totals()
    engine.dispose()
    expected = round(MANIFEST.get("quick_brown_fox").duration_s * 1000)
    # Both streams were admitted (two API calls) and decoded on the
    # service's device, whose timing is its own: some compute time.
    assert totals.pop(("acme", "compute_ms", ())) > 0
    assert totals == {("acme", "audio_ms", ()): expected + 1000,
                      ("acme", "characters", ()): 1200,
                      ("acme", "api_calls", ()): 2}


async def answer_to(port: int, request: bytes) -> bytes:
    """What the server sends, until it closes, to a request cut short."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    try:
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_the_ingest_apis_read_deadlines_come_from_the_environment(
        tmp_path: Path) -> None:
    """Half a head, and a head with half a body: each is answered 408
    once its deadline has passed."""
    head = (b"POST /v1/usage/events HTTP/1.1\r\nHost: ingest\r\n"
            b"Authorization: Bearer acme-key\r\n")
    whole_head = head + (b"Content-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n")
    async with running_service(
            ("-m", "ch08_metering", "serve", "--port", "0",
             "--stream-port", "0", "--grpc-port", "0"),
            {"SPEECH_API_KEYS": "acme-key",
             "DATABASE_URL": f"sqlite:///{tmp_path}/ledger.sqlite3",
             "CH04_LOAD_S": "0", "CH04_WARMUP_S": "0",
             "METERING_HEADER_TIMEOUT_S": "0.5",
             "METERING_BODY_TIMEOUT_S": "0.5"}) as service:
        half_head = await answer_to(service.port, head)
        half_body = await answer_to(service.port, whole_head + b"[{")
    assert half_head.startswith(b"HTTP/1.1 408 ")
    assert b"request head not received within 0.5 s" in half_head
    assert half_body.startswith(b"HTTP/1.1 408 ")
    assert b"body not received within 0.5 s" in half_body


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_deadline_must_be_a_positive_number_of_seconds(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--body-timeout-s", value])
    assert exited.value.code == 2
    assert "argument --body-timeout-s: " in capsys.readouterr().err


def test_a_ledger_of_an_earlier_layout_stops_serve_at_start(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/ledger.sqlite3"
    create_earlier_ledger(url)
    code = main(["serve", "--database-url", url, "--port", "0",
                 "--stream-port", "0"])
    assert code == 2
    assert "start a new ledger" in capsys.readouterr().err
