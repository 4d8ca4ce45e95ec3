"""The SSE load client of chapter 7's benchmark, against a scripted
server: it reads the engine's time from the comment before the first
delta, and a stream that ends on an error event is a failed request."""

from __future__ import annotations

import asyncio
from pathlib import Path

from examples.sse_load import run_load, summary

DELTA = b'data: {"type":"transcript.text.delta","delta":"hi"}\n\n'
DONE = b'data: {"type":"transcript.text.done","text":"hi"}\n\n'
ERROR = b'data: {"error":{"message":"busy","code":"queue_full"}}\n\n'


def chunked(*frames: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames)
    return (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n")


async def load_against(last: bytes, tmp_path: Path) -> dict[str, float]:
    answer = chunked(b": engine-ms=12.5\n\n" + DELTA, last)

    async def serve(reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(int(line.split(b":")[1])
                              for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                await reader.readexactly(length)
                writer.write(answer)
        except asyncio.IncompleteReadError:  # the client closed
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF" + bytes(1000))
    try:
        result = await run_load(port, "key", audio, concurrency=2,
                                duration_s=0.3, warmup_s=0.0)
    finally:
        server.close()
    assert all(t.engine_s == 0.0125 for t in result.timings)
    return summary(result, 2)


async def test_a_stream_that_ends_on_done_is_timed(tmp_path: Path) -> None:
    figures = await load_against(DONE, tmp_path)
    assert figures["errors"] == 0
    assert figures["requests"] > 0
    assert figures["sse_events_per_s"] == 2 * figures["requests_per_s"]
    assert figures["engine_first_segment_p50_ms"] == 12.5


async def test_an_error_event_is_a_failed_request(tmp_path: Path) -> None:
    figures = await load_against(ERROR, tmp_path)
    assert figures["errors"] > 0
    assert figures["requests"] == 0
