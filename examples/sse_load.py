"""Many concurrent SSE transcriptions, timed from the client's side.

`python -m examples.sse_load --port 8007 --key KEY --concurrency 100`:
each of N clients keeps one HTTP/1.1 connection and sends the same
streaming transcription (`stream=true`) again as soon as the last one
ended, for `--duration` seconds after a warm-up. For each request it
records the time from starting to send to the first
`transcript.text.delta`, and the engine's own time to that first
segment, which the service sends as the SSE comment `: engine-ms=N`
just before it: the difference is what the API layer added (upload,
form parsing, decoding the file, admission, SSE framing, the socket).
The client is plain asyncio on raw sockets, so that it costs little
next to what it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from examples.fixtures import load_manifest


@dataclass(frozen=True)
class Timing:
    ttfe_s: float  # send started -> first delta frame received
    engine_s: float  # the engine's time to the first segment


class StreamFailedError(Exception):
    """A stream that ended without `transcript.text.done` (an error
    event, or a body cut short): a failed request, like a bad status."""


@dataclass
class LoadResult:
    timings: list[Timing] = field(default_factory=list)
    events: int = 0  # SSE frames with data, in the measured window
    requests: int = 0
    errors: int = 0
    window_s: float = 0.0


def request_bytes(port: int, key: str, audio: bytes, name: str) -> bytes:
    boundary = uuid.uuid4().hex
    parts = [(b"model", b"mock-asr"), (b"stream", b"true")]
    body = b"".join(
        b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n"
        b"%s\r\n" % (boundary.encode(), field_name, value)
        for field_name, value in parts)
    body += (b"--%s\r\nContent-Disposition: form-data; name=\"file\";"
             b" filename=\"%s\"\r\nContent-Type: audio/wav\r\n\r\n"
             % (boundary.encode(), name.encode()) + audio
             + b"\r\n--%s--\r\n" % boundary.encode())
    head = (f"POST /v1/audio/transcriptions HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def read_chunks(reader: asyncio.StreamReader
                      ) -> AsyncIterator[bytes]:
    """The body of a chunked response, chunk by chunk."""
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return
        data = await reader.readexactly(size)
        await reader.readexactly(2)
        yield data


async def one_request(reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, request: bytes,
                      ) -> tuple[Timing | None, int]:
    started = time.perf_counter()
    writer.write(request)
    status = await reader.readline()
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if b" 200 " not in status or headers.get(
            "transfer-encoding") != "chunked":
        raise ConnectionError(f"unexpected answer: {status!r}")
    timing, events, engine_s, buffer = None, 0, None, b""
    last = b""
    async for chunk in read_chunks(reader):
        buffer += chunk
        *frames, buffer = buffer.split(b"\n\n")
        for frame in frames:
            if frame.startswith(b": engine-ms="):
                engine_s = float(frame.split(b"=", 1)[1]) / 1000
            elif frame.startswith(b"data: "):
                events += 1
                last = frame
                if timing is None and b"transcript.text.delta" in frame:
                    assert engine_s is not None, "no engine time sent"
                    timing = Timing(time.perf_counter() - started,
                                    engine_s)
    if b'"transcript.text.done"' not in last:
        raise StreamFailedError(f"the stream ended on {last[:200]!r}")
    return timing, events


async def client(port: int, request: bytes, start_at: float,
                 end_at: float, result: LoadResult) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < end_at:
            began = time.perf_counter()
            try:
                timing, events = await one_request(reader, writer,
                                                   request)
            except (ConnectionError, ValueError, StreamFailedError,
                    asyncio.IncompleteReadError):
                result.errors += began >= start_at
                writer.close()
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port)
                continue
            if began >= start_at and time.perf_counter() <= end_at:
                result.requests += 1
                result.events += events
                if timing is not None:
                    result.timings.append(timing)
    finally:
        writer.close()


async def run_load(port: int, key: str, audio: Path, concurrency: int,
                   duration_s: float, warmup_s: float) -> LoadResult:
    request = request_bytes(port, key, audio.read_bytes(), audio.name)
    now = time.perf_counter()
    start_at, end_at = now + warmup_s, now + warmup_s + duration_s
    result = LoadResult(window_s=duration_s)
    await asyncio.gather(*(client(port, request, start_at, end_at, result)
                           for _ in range(concurrency)))
    return result


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return -1.0
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(result: LoadResult, concurrency: int) -> dict[str, float]:
    ttfe = [t.ttfe_s * 1000 for t in result.timings]
    engine = [t.engine_s * 1000 for t in result.timings]
    overhead = [(t.ttfe_s - t.engine_s) * 1000 for t in result.timings]
    return {
        "concurrency": concurrency,
        "requests": result.requests,
        "requests_per_s": result.requests / result.window_s,
        "sse_events_per_s": result.events / result.window_s,
        "errors": result.errors,
        "ttfe_p50_ms": percentile(ttfe, 0.50),
        "ttfe_p99_ms": percentile(ttfe, 0.99),
        "engine_first_segment_p50_ms": percentile(engine, 0.50),
        "engine_first_segment_p99_ms": percentile(engine, 0.99),
        "ttfe_overhead_p50_ms": percentile(overhead, 0.50),
        "ttfe_overhead_p99_ms": percentile(overhead, 0.99),
        "ttfe_overhead_mean_ms": (statistics.fmean(overhead)
                                  if overhead else -1.0),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.sse_load")
    parser.add_argument("--port", type=int, default=8007)
    parser.add_argument("--key", default=os.environ.get(
        "SPEECH_API_KEYS", "").split(",")[0])
    parser.add_argument("--fixture", default="quick_brown_fox")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args(argv)
    audio = load_manifest().get(args.fixture).file()
    result = asyncio.run(run_load(args.port, args.key, audio,
                                  args.concurrency, args.duration,
                                  args.warmup))
    for name, value in summary(result, args.concurrency).items():
        print(f"{name:32} {value:12,.2f}")


if __name__ == "__main__":
    main()
