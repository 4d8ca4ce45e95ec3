"""Graceful shutdown: open utterances finish, then streams close 1001."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from ch03_gpu.device import Accelerator, CostModel
from ch04_streaming.client import load_audio
from ch04_streaming.server import ServerLimits
from ch04_streaming.stream_handler import StreamHandler
from examples.service import (
    http_status,
    running_service,
    wait_until_ready,
)
from tests.ch04.harness import KEY, Running, Start, audio_of, reference

REPO_ROOT = Path(__file__).resolve().parents[2]
QUERY = "/v1/listen?encoding=linear16&sample_rate=16000&interim_results=true"


async def finals_then_close(
    socket: ClientConnection,
) -> tuple[list[str], int | None, str | None]:
    finals = []
    async for raw in socket:
        message = json.loads(raw)
        if message["type"] == "Results" and message["is_final"]:
            finals.append(message["channel"]["alternatives"][0]["transcript"])
    return finals, socket.close_code, socket.close_reason


async def test_shutdown_delivers_the_open_utterance(
    start_server: Start,
) -> None:
    payload = load_audio(audio_of("quick_brown_fox")).payload
    async with start_server() as running:
        socket = await connect(running.url + QUERY, additional_headers={
            "Authorization": f"Token {KEY}"})
        await socket.send(payload[: 32_000 * 3])  # mid-sentence
        (handler,) = running.server.handlers
        async with asyncio.timeout(5):
            while handler.session.stats.received_s < 3.0:
                await asyncio.sleep(0.01)
        shutting = asyncio.create_task(running.server.shutdown())
        finals, code, reason = await finals_then_close(socket)
        await shutting
    assert (code, reason) == (1001, "server shutting down")
    (text,) = finals
    assert text and reference("quick_brown_fox").startswith(text)


async def test_sigterm_drains_and_exits() -> None:
    args = ("-m", "ch04_streaming", "--port", "0", "--load-s", "0",
            "--warmup-s", "0")
    async with running_service(args, {"SPEECH_API_KEYS": KEY}) as service:
        async with asyncio.timeout(30):
            socket = await ready_socket(service.port)
            payload = load_audio(audio_of("weather_forecast")).payload
            await socket.send(payload[: 32_000 * 3])
            interim = json.loads(await socket.recv())  # it is listening
            assert interim["type"] == "Results"
            service.process.send_signal(signal.SIGTERM)
            finals, code, _ = await finals_then_close(socket)
            assert code == 1001
            assert finals and reference("weather_forecast").startswith(
                finals[0])
            assert await service.process.wait() == 0


async def ready_socket(port: int, key: str = KEY) -> ClientConnection:
    """Connect once the cold start is over (503 until then)."""
    await wait_until_ready(port)
    return await connect(f"ws://127.0.0.1:{port}{QUERY}",
                         additional_headers={"Authorization": f"Token {key}"})


# A device whose every batch takes ten minutes: no final can come.
STUCK = Accelerator(CostModel(fixed_ms=600_000, per_audio_s_ms=0))


async def stuck_stream(running: Running
                       ) -> tuple[ClientConnection, StreamHandler]:
    """A stream with audio in, whose decode will never finish."""
    socket = await connect(running.url + QUERY, additional_headers={
        "Authorization": f"Token {KEY}"})
    await socket.send(load_audio(audio_of("quick_brown_fox")).payload)
    (handler,) = running.server.handlers
    return socket, handler


async def test_streams_that_cannot_finish_are_cut_at_the_grace(
    start_server: Start,
) -> None:
    limits = ServerLimits(shutdown_grace_s=0.2)
    async with start_server(limits=limits, device=STUCK) as running:
        socket, handler = await stuck_stream(running)
        async with asyncio.timeout(5):
            while handler.session.stats.received_s < 5.0:
                await asyncio.sleep(0.01)
        async with asyncio.timeout(5):  # grace 0.2 s, not 10 minutes
            await running.server.shutdown()
        await socket.wait_closed()
    assert not running.server.handlers
    assert socket.close_code == 1001


async def test_with_no_keys_set_a_printed_dev_key_works() -> None:
    env = {"SPEECH_API_KEYS": ""}
    async with running_service(("-m", "ch04_streaming", "--port", "0",
                                "--load-s", "0", "--warmup-s", "0"),
                               env) as service:
        await connect_with_printed_key(service.port, service.banner)


async def connect_with_printed_key(port: int, lines: list[str]) -> None:
    (line,) = [x for x in lines if "development key" in x]
    key = line.split("development key: ")[1].split()[0]
    async with asyncio.timeout(30):
        socket = await ready_socket(port, key)
        await socket.close()


async def test_while_draining_probes_and_clients_get_503(
    start_server: Start,
) -> None:
    """The listener stays open through the drain: /readyz answers 503
    and a new stream is refused with a reason, not 'connection
    refused', so a load balancer can tell draining from dead."""
    limits = ServerLimits(shutdown_grace_s=2.0)
    async with start_server(limits=limits, device=STUCK) as running:
        socket, handler = await stuck_stream(running)
        async with asyncio.timeout(5):
            while handler.session.stats.received_s == 0:
                await asyncio.sleep(0.01)
        draining = asyncio.create_task(running.server.shutdown())
        await asyncio.sleep(0)  # shutdown has begun: draining is set
        assert running.server.draining
        assert await http_status(running.http + "/readyz") == 503
        with pytest.raises(InvalidStatus) as caught:
            await connect(running.url + QUERY, additional_headers={
                "Authorization": f"Token {KEY}"})
        assert caught.value.response.status_code == 503
        async with asyncio.timeout(10):
            await draining
        await socket.wait_closed()
    assert socket.close_code == 1001


async def test_ctrl_c_to_the_process_group_still_drains() -> None:
    """Ctrl-C in a terminal signals the whole process group, the
    matcher's worker too; the service must still finish the open
    utterance with it before either exits."""
    args = ("-m", "ch04_streaming", "--port", "0", "--load-s", "0",
            "--warmup-s", "0")
    async with running_service(args, {"SPEECH_API_KEYS": KEY},
                               own_group=True) as service:
        async with asyncio.timeout(30):
            socket = await ready_socket(service.port)
            payload = load_audio(audio_of("weather_forecast")).payload
            await socket.send(payload[: 32_000 * 3])  # mid-sentence
            interim = json.loads(await socket.recv())
            assert interim["type"] == "Results"
            os.killpg(service.pid, signal.SIGINT)
            finals, code, _ = await finals_then_close(socket)
            assert await service.process.wait() == 0
    assert code == 1001
    assert finals and finals[0]
