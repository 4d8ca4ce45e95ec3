"""Clients seen through a real TCP socket: one that shuts its sending
side after its last audio, and one that stops reading altogether."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket as sockets

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from ch03_gpu.device import Accelerator, CostModel
from ch04_streaming.client import DIALECTS, load_audio, stream
from ch04_streaming.server import ServerLimits
from ch04_streaming.stream_handler import ConnectionLimits
from tests.ch04.harness import (
    KEY,
    Running,
    Start,
    audio_of,
    reference,
)

DEEPGRAM = "/v1/listen?encoding=linear16&sample_rate=16000"
CHUNK = 3200  # 100 ms of 16 kHz linear16


async def half_closing_client(url: str, audio: bytes
                              ) -> tuple[list[dict[str, object]], int]:
    """Send the audio, shut the sending side (no CloseStream, no close
    frame), then read until the server ends the connection. Returns
    the JSON messages and the close code the server sent."""
    uri = parse_uri(url)
    client = ClientProtocol(uri)
    request = client.connect()
    request.headers["Authorization"] = f"Token {KEY}"
    client.send_request(request)
    reader, writer = await asyncio.open_connection(uri.host, uri.port)
    messages: list[dict[str, object]] = []
    writer.write(b"".join(client.data_to_send()))
    async with asyncio.timeout(30):
        while not any(isinstance(e, Response) for e in
                      client.events_received()):
            client.receive_data(await reader.read(65_536))
        for start in range(0, len(audio), CHUNK):
            client.send_binary(audio[start : start + CHUNK])
        writer.write(b"".join(client.data_to_send()))
        writer.write_eof()  # a TCP half-close: we still read
        while data := await reader.read(65_536):
            client.receive_data(data)
            messages += [json.loads(bytes(event.data)) for event
                         in client.events_received()
                         if isinstance(event, Frame)
                         and event.opcode is Opcode.TEXT]
    writer.close()
    assert client.close_rcvd is not None, "the server sent no close"
    return messages, client.close_rcvd.code


async def test_a_half_closed_client_still_gets_its_finals(
    start_server: Start,
) -> None:
    """A client that shuts its sending side after its last audio, as
    `nc -N` or a script piping a file does, has said it is done: it
    gets the finals for everything it sent, the closing Metadata and
    an orderly close, as if it had sent CloseStream."""
    audio = load_audio(audio_of("call_back")).payload
    async with start_server() as running:
        messages, code = await half_closing_client(
            running.url + DEEPGRAM, audio)
        async with asyncio.timeout(5):
            while running.server.handlers:
                await asyncio.sleep(0.01)
        assert not running.server.admitted  # the slot is free again
    finals = [m for m in messages if m.get("is_final")]
    words = " ".join(
        str(m["channel"]["alternatives"][0]["transcript"])  # type: ignore
        for m in finals)
    assert " ".join(words.split()) == reference("call_back")
    assert messages[-1]["type"] == "Metadata"
    assert messages[-1]["duration"] == round(len(audio) / 32_000, 3)
    assert code == 1000


async def test_a_client_that_stops_reading_is_cut_off(
    start_server: Start,
) -> None:
    """Through real sockets, not a fake connection: the client keeps
    sending but reads nothing, with a small receive window. Results
    back up through the kernel's buffers into the bounded outbox, and
    the server closes the stream as a slow consumer instead of
    buffering without bound. Another client is served meanwhile."""
    limits = ServerLimits(connection=ConnectionLimits(send_queue=4),
                          close_timeout_s=0.5)
    audio = load_audio(audio_of("support_call")).payload
    instant = Accelerator(CostModel(fixed_ms=0, per_audio_s_ms=0))
    async with start_server(limits=limits, device=instant) as running:
        quiet = sockets.socket()
        quiet.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 4096)
        quiet.connect(("127.0.0.1", running.server.port))
        # max_queue=1: the client library stops reading the socket too.
        stalled = await connect(
            running.url + DEEPGRAM + "&interim_results=true",
            sock=quiet, max_queue=1,
            additional_headers={"Authorization": f"Token {KEY}"})
        async with asyncio.timeout(60):
            while not running.server.handlers:
                await asyncio.sleep(0.01)
            (handler,) = running.server.handlers
            small_send_buffer(handler.connection)
            await keep_sending(stalled, audio, running)
        closes = dict(running.server.closes)
        stalled.transport.abort()
        report = await stream(running.url, DIALECTS["deepgram"], KEY,
                              load_audio(audio_of("call_back")))
    assert closes == {(1008, "NET-0002"): 1}
    assert report.transcript == reference("call_back")


def small_send_buffer(connection: object) -> None:
    """Shrink the server side's kernel buffer, which on loopback grows
    to megabytes: the test then needs seconds of results, not minutes."""
    assert isinstance(connection, ServerConnection)
    server_side = connection.transport.get_extra_info("socket")
    server_side.setsockopt(sockets.SOL_SOCKET, sockets.SO_SNDBUF, 4096)


async def keep_sending(socket: ClientConnection, audio: bytes,
                       running: Running) -> None:
    """Send the audio over and over until the server has let go."""
    with contextlib.suppress(ConnectionClosed):
        while running.server.handlers:
            for start in range(0, len(audio), CHUNK):
                if not running.server.handlers:
                    return
                await socket.send(audio[start : start + CHUNK])
