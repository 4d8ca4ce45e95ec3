"""The baseline: a bare WebSocket server that echoes every frame.

What the chapter 4 service is measured against: the same library, the
same event loop, the same limits, and no work at all per frame. The
difference in capacity is the price of VAD, recognition and results.
With `--vad`, every frame also goes through the chapter's VAD gate
before it is echoed: the transport plus the VAD and nothing else, which
separates the price of the VAD from that of the rest of the service.

    python -m bench.echo_server [--port 0] [--vad]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ch04_streaming.app import event_loop_factory
from ch04_streaming.audio import AudioDecoder, Encoding
from ch04_streaming.vad import VadConfig, build_vad_gate


async def echo(connection: ServerConnection) -> None:
    try:
        async for frame in connection:
            await connection.send(frame)
    except ConnectionClosed:
        pass


async def echo_after_vad(connection: ServerConnection) -> None:
    """Decode each 16 kHz linear16 frame and run the VAD gate on it."""
    decoder = AudioDecoder(Encoding.LINEAR16, 16_000)
    gate = build_vad_gate(VadConfig())
    try:
        async for frame in connection:
            if isinstance(frame, bytes):
                gate.push(decoder.decode(frame))
            await connection.send(frame)
    except ConnectionClosed:
        pass


async def run(port: int, vad: bool) -> None:
    handler = echo_after_vad if vad else echo
    async with serve(handler, "127.0.0.1", port, compression=None,
                     max_size=256 * 1024) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on ws://127.0.0.1:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--vad", action="store_true",
                        help="run the VAD gate on each frame first")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run(args.port, args.vad))
    return 0


if __name__ == "__main__":
    sys.exit(main())
